"""The diagnosis: which epochs stalled, and why.

Input is one `RunData` (tb_stagnation.reader.run_data); output is the report
object of plugin/http_api.md. Modules:

- `baselines`: what a model that learned nothing scores (constant-predictor
  loss, majority-class rate).
- `stall`: the stall detector (flagged epochs, windows and their kind).
- `context`: the run's data validated and prepared once for every detector.
- `findings`: cause codes, the `Finding` record and the detector registry.
- `detectors/`: one function per cause, grouped by what they look at.
- `report`: `analyze_run(run) -> dict` (ranking, notes, JSON shape).
- `api`: `analyze(logdir)` for notebooks and the CLI.

Pure numpy; importing it never imports TensorFlow.
"""
