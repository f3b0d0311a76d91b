"""The diagnosis on real (tiny) Keras trainings: every cause, healthy controls,
plain-Keras runs, and a run logged by both callbacks.

Each scenario of tests/scenarios.py is trained once per session into one
logdir, read back through the reader (`open_logdir`), and analysed.
"""

from __future__ import annotations

import io
import json
import warnings

import pytest
from analysis_helpers import check_schema, codes
from scenarios import HEALTHY, SCENARIOS

from tb_stagnation.analysis.report import analyze_run

pytestmark = pytest.mark.slow

# Plain keras.callbacks.TensorBoard runs: scenario -> expected top code.
KERAS_ONLY = {
    "healthy": HEALTHY,
    "healthy_early_plateau": HEALTHY,
    "learning_rate_too_small": "learning_rate_too_small",
    "learning_rate_too_large": "learning_rate_too_large",
    "lr_schedule_kill": "learning_rate_too_small",
}
BOTH = "lr_schedule_kill"


@pytest.fixture(scope="session")
def scenario_logdir(tmp_path_factory):
    import tensorflow  # noqa: F401 - the scenarios train: fail loudly without it

    root = tmp_path_factory.mktemp("scenarios")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's "no trainable weights", tf.data shuffle
        for name, scenario in SCENARIOS.items():
            scenario.train(str(root / name))
        for name in KERAS_ONLY:
            SCENARIOS[name].train(
                str(root / f"keras_{name}"), stagnation=False, keras_tensorboard=True
            )
        SCENARIOS[BOTH].train(str(root / f"both_{BOTH}"), keras_tensorboard=True)
    return str(root)


@pytest.fixture(scope="session")
def reports(scenario_logdir):
    from tb_stagnation.reader.logdir import open_logdir

    with open_logdir(scenario_logdir) as source:
        names = source.list_runs()
        runs = source.read_runs(names)
    out = {}
    for run in runs:
        report = analyze_run(run)
        check_schema(report)
        out[run.name] = report
    return out


def _describe(report: dict) -> str:
    return json.dumps(
        {k: report[k] for k in ("stalled_epochs", "stall_windows", "baselines", "notes")}
        | {"findings": [(f["code"], f["severity"], f["confidence"]) for f in report["findings"]]}
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_diagnosis(reports, name):
    scenario = SCENARIOS[name]
    report = reports[name]
    assert report["source"] == "callback"
    assert report["epochs"] == scenario.epochs
    detail = _describe(report)
    if scenario.expected == HEALTHY:
        assert report["stalled_epochs"] == [], detail
        assert not [f for f in report["findings"] if f["severity"] == "error"], detail
        assert report["healthy"], detail
        return
    assert not report["healthy"], detail
    top = report["findings"][0]
    assert top["code"] == scenario.expected, detail
    assert top["severity"] == "error", detail
    assert top["confidence"] >= 0.6, detail
    assert top["evidence"] and top["fix"]
    stalled = report["stalled_epochs"]
    if scenario.stall_from is None:
        assert stalled == [], detail
    else:
        assert stalled, detail
        first = stalled[0]
        assert scenario.stall_from <= first <= scenario.stall_from + scenario.stall_slack, detail
        # From its onset the stall runs to the end of training.
        assert stalled == list(range(first, scenario.epochs)), detail


def test_schedule_stall_starts_where_the_learning_rate_died(reports):
    report = reports["lr_schedule_kill"]
    assert report["stalled_epochs"][0] == 6
    top = report["findings"][0]
    assert top["epochs"][0] == 6 and "1e-9" in top["evidence"]


def test_vanishing_gradients_names_the_early_layers(reports):
    top = reports["vanishing_gradients"]["findings"][0]
    assert len(top["layers"]) >= 3 and "sigmoid" in top["evidence"]


def test_frozen_layers_names_every_layer(reports):
    top = reports["frozen_layers"]["findings"][0]
    assert len(top["layers"]) == 3 and "0 of" in top["evidence"]


@pytest.mark.parametrize("name", sorted(KERAS_ONLY))
def test_plain_keras_runs(reports, name):
    report = reports[f"keras_{name}"]
    assert report["source"] == "keras"
    assert any("StagnationCallback" in note for note in report["notes"])
    expected = KERAS_ONLY[name]
    detail = _describe(report)
    if expected == HEALTHY:
        assert report["healthy"] and report["stalled_epochs"] == [], detail
        return
    assert report["stalled_epochs"], detail
    assert report["stalled_epochs"][0] <= SCENARIOS[name].stall_from + 2, detail
    assert report["findings"][0]["code"] == expected, detail
    # Curves alone are weaker evidence than the callback's measurements.
    callback_top = reports[name]["findings"][0]
    assert report["findings"][0]["confidence"] <= callback_top["confidence"]


def test_run_logged_by_both_callbacks_appears_once_as_callback(reports):
    both = [name for name in reports if BOTH in name and name.startswith("both_")]
    assert both == [f"both_{BOTH}"]
    report = reports[both[0]]
    assert report["source"] == "callback"
    assert report["stalled_epochs"] == reports[BOTH]["stalled_epochs"]
    assert codes(report)[0] == "learning_rate_too_small"


def test_cli_on_the_scenarios(scenario_logdir):
    from tb_stagnation.cli import main

    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        status = main(["report", scenario_logdir, "--json"])
    assert status == 1
    data = json.loads(out.getvalue())
    assert data["schema"] == 1
    assert len(data["runs"]) == len(SCENARIOS) + len(KERAS_ONLY) + 1
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["report", scenario_logdir, "--run", "^healthy"]) == 0
    lines = text.getvalue().splitlines()
    assert lines[0].split()[:3] == ["RUN", "SOURCE", "EPOCHS"]
    assert sum(1 for line in lines if line.startswith("healthy")) == 2
