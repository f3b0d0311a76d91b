"""The routes on logdirs written by real training with StagnationCallback.

Tiny models, a few epochs: a healthy run, one that cannot learn (learning
rate 0), one that diverges to NaN, each with keras.callbacks.TensorBoard on
the same `log_dir` as a user would. `/report` must be what the analysis (and
`tb-stagnation report --json`) says about the same run.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from urllib.parse import quote

import numpy as np
import pytest
from plugin_support import ServedPlugin, plugin_analyze

from tb_stagnation.plugin import jsonable
from tb_stagnation.reader.provider_reader import ProviderReader

# TensorFlow refuses "<" in layer names (scope names); a folder takes anything.
HOSTILE_RUN = "<img src=x onerror=alert(1)> ünï"
CLI = shutil.which("tb-stagnation", path=os.path.dirname(sys.executable))
HAS_CLI = CLI is not None and importlib.util.find_spec("tb_stagnation.cli") is not None


def train(log_dir: str, learning_rate: float, epochs: int = 4):
    import keras

    from tb_stagnation import StagnationCallback

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=32,
        validation_split=0.25,
        verbose=0,
        callbacks=[
            StagnationCallback(log_dir=log_dir, probe_size=32),
            keras.callbacks.TensorBoard(log_dir=log_dir),
        ],
    )


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    pytest.importorskip("tb_stagnation.callback.stagnation_callback")
    root = tmp_path_factory.mktemp("trained")
    train(str(root / HOSTILE_RUN), 0.1)
    train(str(root / "frozen"), 0.0)
    train(str(root / "diverges"), 1e12)
    return str(root)


@pytest.fixture(scope="module")
def served(logdir):
    return ServedPlugin(logdir)


def analysis_of(served, run: str) -> dict:
    reader = ProviderReader(served.plugin._data_provider)
    report = plugin_analyze()(reader.read_run(run))
    return json.loads(jsonable.dumps(jsonable.to_jsonable(report)))


def test_runs_of_trained_models(served):
    rows = {row["run"]: row for row in served.get_json("/runs")["runs"]}
    assert set(rows) == {HOSTILE_RUN, "frozen", "diverges"}
    for row in rows.values():
        assert row["source"] == "callback" and row["epochs"] == 4
        assert row["status"] in {"healthy", "stalled", "findings"}


@pytest.mark.parametrize("run", [HOSTILE_RUN, "frozen", "diverges"])
def test_report_is_the_analysis_of_the_same_run(served, run):
    assert served.get_json(f"/report?run={quote(run)}") == analysis_of(served, run)


@pytest.mark.skipif(not HAS_CLI, reason="the tb-stagnation CLI does not exist yet")
def test_report_equals_the_cli(served, logdir):
    out = subprocess.run(
        [CLI, "report", "--json", logdir], capture_output=True, text=True, timeout=300
    )
    assert out.returncode in (0, 1), out.stderr[-2000:]  # 1 may mean "stalled runs found"
    printed = json.loads(out.stdout)
    cli_runs = printed["runs"]
    assert {report["run"] for report in cli_runs} == {HOSTILE_RUN, "frozen", "diverges"}
    for cli_report in cli_runs:
        assert served.get_json(f"/report?run={quote(cli_report['run'])}") == cli_report


def test_series_of_trained_models(served):
    healthy = served.get_json(f"/series?run={quote(HOSTILE_RUN)}")
    assert healthy["run"] == HOSTILE_RUN and healthy["epochs"] == [0, 1, 2, 3]
    assert healthy["layers"]["names"] == ["hidden", "out"]
    assert healthy["layers"]["activations"] == ["relu", "softmax"]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(healthy["metrics"])
    assert all(isinstance(v, float) for v in healthy["global"]["grad_norm"])

    frozen = served.get_json("/series?run=frozen")
    assert frozen["learning_rate"] == [0.0] * 4
    assert frozen["global"]["update_norm"] == [0.0] * 4

    diverges = served.get_json("/series?run=diverges")
    assert {"NaN", "Infinity"} & set(map(str, diverges["metrics"]["loss"]))
