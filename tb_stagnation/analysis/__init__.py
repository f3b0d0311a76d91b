"""The diagnosis: which epochs stalled, and why.

Input is one `RunData` (`run_data.py`, filled by the reader); output is the report
object of plugin/http_api.md. Modules:

- `baselines`: what a model that learned nothing scores (constant-predictor
  loss, majority-class rate).
- `stall`: the stall detector (flagged epochs, windows and their kind).
- `context`: the run's data validated and prepared once for every detector.
- `findings`: cause codes, the `Finding` record and the detector registry.
- `detectors/`: one function per cause, grouped by what they look at.
- `report`: `analyze_run(run) -> dict` (ranking, notes, JSON shape).
- `status`: a run's status (stalled, findings, error, healthy, empty).
- `presentation`: findings and reports as text (CLI, pre-flight, stop-on-stall).
- `api`: `analyze(logdir) -> Analysis` for notebooks and the CLI.

The loss taxonomy is `tb_stagnation.losses`; the JSON policy `tb_stagnation.jsonable`.

Pure numpy; importing it never imports TensorFlow.
"""
