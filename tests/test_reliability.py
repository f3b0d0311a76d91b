"""Faults and bad input (issue 7), each through the real pieces.

- event files holding garbage, cut mid-record, or corrupt in the middle, and a
  run folder deleted while a real `tensorboard` (both loaders) serves it;
- the CLI on such a logdir;
- NaN / Inf in every series the format has, through the analysis, the routes
  and the CLI;
- 20 clients hammering the routes while a run is being written;
- a training process killed with SIGKILL mid-epoch;
- the disk filling up under the callback.

Every case ends in an answer a person can read (a JSON error, a note, one
warning), never a 500 or a traceback, and nothing already written is lost.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from analysis_helpers import check_schema
from plugin_support import PREFIX, ServedPlugin, write_callback_run
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins import base_plugin
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util
from tensorboard_process import TensorBoardProcess
from werkzeug import test as werkzeug_test

from tb_stagnation import cli
from tb_stagnation.analysis.report import analyze_run
from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin
from tb_stagnation.reader import logdir as reader_logdir
from tb_stagnation.reader.logdir import open_logdir
from tb_stagnation.summary import metadata, tags
from tb_stagnation.summary.writer import SummaryWriter

HAS_DATA_SERVER = reader_logdir._data_server_binary() is not None
LOADERS = [
    pytest.param(
        True,
        id="rust_data_server",
        marks=pytest.mark.skipif(not HAS_DATA_SERVER, reason="no tensorboard-data-server"),
    ),
    pytest.param(False, id="python_multiplexer"),
]
NON_FINITE = ("NaN", "Infinity", "-Infinity")


# -- helpers -------------------------------------------------------------------------


def strict_json(data):
    """JSON as a browser's JSON.parse takes it: no bare NaN or Infinity."""

    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON")

    return json.loads(data, parse_constant=refuse)


def event_file(run_dir) -> str:
    (path,) = glob.glob(os.path.join(str(run_dir), "*tfevents*"))
    return path


def record_ends(data: bytes) -> list[int]:
    """Byte offsets where each TFRecord of an event file ends."""
    ends, offset = [], 0
    while offset + 12 <= len(data):
        length = int.from_bytes(data[offset : offset + 8], "little")
        offset += 12 + length + 4
        ends.append(offset)
    return ends


def read_runs(logdir, use_data_server: bool) -> dict:
    with open_logdir(str(logdir), use_data_server=use_data_server) as source:
        return {run.name: run for run in source.iter_runs(source.list_runs())}


def run_cli_in_process(monkeypatch, capsys, *argv, use_data_server=True):
    if not use_data_server:
        monkeypatch.setattr(reader_logdir, "_data_server_binary", lambda: None)
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def run_cli(*argv, timeout=120):
    done = subprocess.run(
        [sys.executable, "-m", "tb_stagnation.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


def damaged_logdir(root) -> dict:
    """ok (6 epochs), cut (last record cut in half: 5 complete epochs), mid
    (garbage after the model card and 3 epochs: TensorBoard stops there),
    garbage (an event file of random bytes, nothing else)."""
    for name in ("ok", "cut", "mid"):
        write_callback_run(str(root / name), epochs=6)
    cut = event_file(root / "cut" / tags.RUN_SUBDIR)
    data = open(cut, "rb").read()
    ends = record_ends(data)
    with open(cut, "wb") as handle:
        handle.write(data[: ends[-2] + (ends[-1] - ends[-2]) // 2])
    mid = event_file(root / "mid" / tags.RUN_SUBDIR)
    data = open(mid, "rb").read()
    ends = record_ends(data)  # header, model card, epoch 0, 1, 2, ...
    with open(mid, "wb") as handle:
        handle.write(data[: ends[4]] + b"\x13\x37garbage" * 8 + data[ends[4] :])
    garbage = root / "garbage" / tags.RUN_SUBDIR
    garbage.mkdir(parents=True)
    (garbage / "events.out.tfevents.1700000000.host.1.stagnation.v1").write_bytes(
        np.random.default_rng(0).bytes(3000)
    )
    return {"ok": 6, "cut": 5, "mid": 3}


# -- a real tensorboard ----------------------------------------------------------------


class Tensorboard(TensorBoardProcess):
    def __init__(self, logdir, load_fast: bool, log_path) -> None:
        super().__init__(logdir, load_fast=load_fast, log_path=log_path)
        self.base = self.url.rstrip("/") + PREFIX

    def get(self, route: str):
        """(status, content type, body) of GET /data/plugin/stagnation + route."""
        try:
            with urllib.request.urlopen(self.base + route, timeout=60) as response:
                return response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read()

    def get_json(self, route: str, statuses=(200,)):
        status, content_type, body = self.get(route)
        assert status in statuses, (route, status, body[:300])
        assert content_type == "application/json", (route, content_type)
        return status, strict_json(body)


def quoted(run: str) -> str:
    return "?run=" + urllib.parse.quote(run, safe="")


@pytest.mark.parametrize("load_fast", [True, False], ids=["load_fast", "python_loader"])
def test_real_tensorboard_serves_damaged_runs_and_survives_a_deleted_one(tmp_path, load_fast):
    logdir = tmp_path / "logdir"
    complete = damaged_logdir(logdir)
    write_callback_run(str(logdir / "gone"), epochs=4)
    server = Tensorboard(logdir, load_fast, tmp_path / "tensorboard.log")
    try:

        def runs():
            return {row["run"]: row for row in server.get_json("/runs")[1]["runs"]}

        server.wait_until(lambda: {"ok", "cut", "mid", "gone"} <= set(runs()), "the first load")
        rows = runs()
        # What TensorBoard could read is served, whole epochs only; the
        # garbage file holds no run at all.
        for name, epochs in complete.items():
            assert rows[name]["epochs"] == epochs and rows[name]["status"] != "error", rows[name]
            series = server.get_json("/series" + quoted(name))[1]
            assert series["epochs"] == list(range(epochs))
            assert all(value is not None for value in series["metrics"]["loss"])
            check_schema(server.get_json("/report" + quoted(name))[1])
        assert "garbage" not in rows
        _, body = server.get_json("/report?run=garbage", statuses=(404,))
        assert body == {"error": "no run named 'garbage' in this logdir"}

        # Warm the caches of the run, then delete its folder under the server.
        server.get_json("/series?run=gone")
        shutil.rmtree(logdir / "gone")
        answers = []  # every answer while TensorBoard notices the deletion
        wrong = []

        def answer(route: str, statuses) -> tuple:
            status, content_type, body = server.get(route)
            if status not in statuses or content_type != "application/json":
                wrong.append((route, status, content_type, body[:300]))
            return status, (strict_json(body) if content_type == "application/json" else None)

        def gone_is_gone():
            status, body = answer("/runs", (200,))
            listed = status == 200 and "gone" in {row["run"] for row in body["runs"]}
            report = answer("/report?run=gone", (200, 404))[0]
            series = answer("/series?run=gone", (200, 404))[0]
            answers.append((listed, report, series))
            status, body = answer("/series?run=ok", (200,))
            if status == 200 and body["epochs"] != list(range(6)):
                wrong.append(("/series?run=ok", body["epochs"]))
            return not listed and report == series == 404

        server.wait_until(gone_is_gone, "the deleted run to leave /runs", timeout=60)
        assert not wrong, wrong[:5]
        assert answers[-1] == (False, 404, 404)
        assert "Traceback" not in server.log() and "tb_stagnation" not in server.log()
    finally:
        server.stop()


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_cli_on_damaged_event_files_reports_with_a_note(
    tmp_path, monkeypatch, capsys, use_data_server
):
    complete = damaged_logdir(tmp_path)
    status, out, err = run_cli_in_process(
        monkeypatch, capsys, "report", str(tmp_path), "--json", use_data_server=use_data_server
    )
    assert status in (0, 1), err
    runs = {run["run"]: run for run in strict_json(out)["runs"]}
    assert {name: run["epochs"] for name, run in runs.items()} == complete
    if use_data_server:
        # The data server says which files it could not read to the end.
        assert any("mid" in note and "corrupt record" in note for note in runs["mid"]["notes"])
        # ... and so does the CLI, once per file, on stderr.
        mid, garbage = err.strip().splitlines()
        assert mid.startswith("tb-stagnation: warning: mid: TensorBoard stopped reading ")
        assert garbage.startswith("tb-stagnation: warning: TensorBoard stopped reading ")
        assert "garbage" in garbage and "checksum mismatch" in garbage
    else:
        assert err == ""  # the Python loader cannot tell a corrupt record from a cut one
    assert "Traceback" not in err


def test_cli_subprocess_on_damaged_event_files_prints_a_table(tmp_path):
    damaged_logdir(tmp_path)
    status, out, err = run_cli("report", str(tmp_path))
    assert status in (0, 1) and "Traceback" not in err
    assert out.splitlines()[0].split()[:2] == ["RUN", "SOURCE"]
    assert out.rstrip().endswith("3 runs: 3 healthy.")


def test_cli_on_a_logdir_of_garbage_only_says_so(tmp_path):
    garbage = tmp_path / "x" / tags.RUN_SUBDIR
    garbage.mkdir(parents=True)
    (garbage / "events.out.tfevents.1.h.stagnation.v1").write_bytes(b"\xff" * 100)
    status, out, err = run_cli("report", str(tmp_path))
    assert status == 2 and out == ""
    assert (
        err.startswith(f"tb-stagnation: error: {tmp_path}: no runs found")
        and "Traceback" not in err
    )


# -- NaN and Inf in every series -------------------------------------------------------


def non_finite(epoch: int) -> float:
    return (math.nan, math.inf, -math.inf)[epoch % 3]


ALL_SCALAR_TAGS = [
    tags.logs_tag("loss"),
    tags.logs_tag("accuracy"),
    tags.logs_tag("val_loss"),
    tags.logs_tag("val_accuracy"),
    tags.LEARNING_RATE,
    tags.GRAD_GLOBAL_NORM,
    tags.GRAD_NONFINITE_FRACTION,
    tags.GRAD_STEPS,
    tags.WEIGHT_GLOBAL_NORM,
    tags.UPDATE_GLOBAL_NORM,
    tags.UPDATE_GLOBAL_RATIO,
    tags.PRED_ENTROPY,
    tags.PRED_CLASS_ENTROPY,
    tags.PRED_TOP_CLASS_SHARE,
    tags.PRED_CHANGED_SHARE,
    tags.INPUT_MEAN,
    tags.INPUT_STD,
    tags.INPUT_MAX_ABS,
    tags.BATCHES_DISTINCT,
    tags.BATCHES_SEEN,
    tags.LABEL_MEAN,
    tags.LABEL_VARIANCE,
]
EPOCHS = 7


def write_non_finite_logdir(root) -> None:
    """`all`: every tag of FORMAT.md non-finite at every epoch (NaN, Inf, -Inf
    in turn), a model card included; `keras`: the same in Keras's epoch_* scalars."""
    writer = SummaryWriter(str(root / "all" / tags.RUN_SUBDIR))
    layers = ["dense", "dense_1"]
    writer.write_model_card(
        0,
        {
            "loss": "sparse_categorical_crossentropy",
            "task": "classification",
            "num_classes": 3,
            "output_activation": "softmax",
            "layers": [{"name": name, "type": "Dense", "activation": "relu"} for name in layers],
        },
    )
    for epoch in range(EPOCHS):
        value = non_finite(epoch)
        writer.write_step(
            epoch,
            scalars={tag: value for tag in ALL_SCALAR_TAGS},
            layer_stats={tag: [value] * len(layers) for tag in tags.LAYER_STATS},
            class_counts=[value] * 3,
        )
        writer.write_step(
            10 * epoch, scalars={tags.BATCH_LOSS: value, tags.BATCH_GRAD_GLOBAL_NORM: value}
        )
    writer.close()
    for role in ("train", "validation"):
        keras = EventFileWriter(str(root / "keras" / role))
        for epoch in range(EPOCHS):
            values = []
            for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
                value = summary_pb2.Summary.Value(
                    tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(non_finite(epoch)))
                )
                if epoch == 0:
                    value.metadata.CopyFrom(scalar_metadata.create_summary_metadata("", ""))
                values.append(value)
            keras.add_event(
                event_pb2.Event(
                    step=epoch, wall_time=1.7e9 + epoch, summary=summary_pb2.Summary(value=values)
                )
            )
        keras.close()


@pytest.fixture(scope="module")
def non_finite_logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("non_finite")
    write_non_finite_logdir(root)
    return root


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_non_finite_everywhere_is_read_and_analysed(non_finite_logdir, use_data_server):
    runs = read_runs(non_finite_logdir, use_data_server)
    assert set(runs) == {"all", "keras"}
    run = runs["all"]
    assert run.epochs.tolist() == list(range(EPOCHS))
    for tag in ALL_SCALAR_TAGS:  # logged non-finite values are kept, not dropped
        assert run.scalar_present[tag].all(), tag
        np.testing.assert_array_equal(run.scalar(tag), [non_finite(e) for e in range(EPOCHS)])
    for tag in tags.LAYER_STATS:
        assert run.layer_stat(tag).shape == (EPOCHS, 2), tag
    for report in map(analyze_run, runs.values()):
        check_schema(report)
        assert report["epochs"] == EPOCHS and not report["healthy"]
    assert "nonfinite_loss" in [f["code"] for f in analyze_run(run)["findings"]]


def test_non_finite_everywhere_through_the_routes(non_finite_logdir):
    served = ServedPlugin(str(non_finite_logdir))
    rows = {row["run"]: row for row in strict_json(served.get("/runs").data)["runs"]}
    assert {row["status"] for row in rows.values()} == {"stalled"}
    for name in ("all", "keras"):
        check_schema(strict_json(served.get("/report?run=" + name).data))
        series = strict_json(served.get("/series?run=" + name).data)
        assert series["epochs"] == list(range(EPOCHS))
        checked = 0
        for path, values in _series_arrays(series):
            assert len(values) == EPOCHS, path
            for epoch, value in enumerate(values):
                expected = ("NaN", "Infinity", "-Infinity")[epoch % 3]
                # A NaN of a series where NaN means "does not apply" is null.
                assert value == expected or (expected == "NaN" and value is None), (
                    path,
                    epoch,
                    value,
                )
            checked += 1
        assert checked == (29 if name == "all" else 5)  # every series of the answer


def _series_arrays(series: dict):
    """(path, per-epoch array) of every series in a /series answer."""
    for key, values in series["metrics"].items():
        yield f"metrics.{key}", values
    if series["learning_rate"] is not None:
        yield "learning_rate", series["learning_rate"]
    for group in ("global", "predictions", "inputs", "batches"):
        for key, values in (series[group] or {}).items():
            if values is not None:
                yield f"{group}.{key}", values
    layers = series["layers"] or {}
    for key in ("grad_norm", "update_ratio", "weight_norm", "dead_fraction", "saturated_fraction"):
        for index, row in enumerate(layers.get(key) or []):
            yield f"layers.{key}[{index}]", row


def test_non_finite_everywhere_through_the_cli(non_finite_logdir):
    status, out, err = run_cli("report", str(non_finite_logdir), "--json")
    assert status == 1 and "Traceback" not in err
    runs = {run["run"]: run for run in strict_json(out)["runs"]}
    assert set(runs) == {"all", "keras"}
    for report in runs.values():
        check_schema(report)
    status, out, err = run_cli("report", str(non_finite_logdir))
    assert status == 1 and "Traceback" not in err
    assert out.rstrip().endswith("2 runs: 0 healthy, 2 stalled.")
    assert "nonfinite_loss" in out


# -- 20 clients while a run is being written ---------------------------------------------


def expected_loss(epoch: int) -> float:
    return float(np.float32(1.0 / (epoch + 1)))


LIVE_LAYERS = 3


def write_live_epoch(writer: SummaryWriter, epoch: int) -> None:
    """One whole epoch: every value is a function of the epoch, so an answer
    can be checked value by value."""
    writer.write_step(
        epoch,
        scalars={
            tags.logs_tag("loss"): expected_loss(epoch),
            tags.logs_tag("accuracy"): 0.5,
            tags.LEARNING_RATE: 0.01,
            tags.GRAD_GLOBAL_NORM: float(epoch + 1),
            tags.WEIGHT_GLOBAL_NORM: 3.0,
            tags.UPDATE_GLOBAL_RATIO: 1e-3,
        },
        layer_stats={
            tags.LAYER_GRAD_NORM: [epoch + 1.0] * LIVE_LAYERS,
            tags.LAYER_UPDATE_RATIO: [1e-3] * LIVE_LAYERS,
        },
        class_counts=[5, 5],
        wall_time=1.7e9 + epoch,
    )


def check_live_series(series: dict) -> int:
    """A /series answer of the live run must be one consistent snapshot."""
    epochs = series["epochs"]
    assert epochs == list(range(len(epochs))), epochs
    assert series["downsampled"] is None
    for path, values in _series_arrays(series):
        assert len(values) == len(epochs), path
        assert None not in values, (path, values)  # an epoch is written whole
    assert series["metrics"]["loss"] == pytest.approx([expected_loss(e) for e in epochs], rel=1e-6)
    assert series["layers"]["grad_norm"] == [[e + 1.0 for e in epochs]] * LIVE_LAYERS
    return len(epochs)


def test_twenty_clients_while_a_run_is_written(tmp_path):
    write_callback_run(str(tmp_path / "other"), epochs=5)
    writer = SummaryWriter(str(tmp_path / "live" / tags.RUN_SUBDIR), flush_secs=3600)
    writer.write_model_card(0, {"layers": [{"name": f"dense_{i}"} for i in range(LIVE_LAYERS)]})
    for epoch in range(3):
        write_live_epoch(writer, epoch)
    writer.flush()
    served = ServedPlugin(str(tmp_path))
    final_epochs = 40
    done = threading.Event()
    failures: list[str] = []

    def write_while_served():
        try:
            for epoch in range(3, final_epochs):
                write_live_epoch(writer, epoch)
                writer.flush()
                served.reload(str(tmp_path))  # what TensorBoard's reload thread does
                time.sleep(0.01)
        except Exception as error:  # noqa: BLE001 - reported by the test
            failures.append(f"writer: {error!r}")
        finally:
            done.set()

    def client(index: int):
        client = werkzeug_test.Client(served.app)
        routes = ["/runs", "/report?run=live", "/series?run=live", "/series?run=other"]
        seen = {route: 0 for route in routes}
        for count in range(400):
            route = routes[(index + count) % len(routes)]
            try:
                response = client.get(PREFIX + route)
                assert response.status_code == 200, (response.status_code, response.data[:300])
                body = strict_json(response.data)
                if route == "/runs":
                    rows = {row["run"]: row for row in body["runs"]}
                    assert rows["other"]["epochs"] == 5 and rows["live"]["status"] != "error"
                    epochs = rows["live"]["epochs"]
                elif route == "/report?run=live":
                    check_schema(body)
                    epochs = body["epochs"]
                elif route == "/series?run=live":
                    epochs = check_live_series(body)
                else:
                    epochs = len(body["epochs"])
                    assert epochs == 5
                # Never an older answer after a newer one.
                assert epochs >= seen[route], (seen[route], epochs)
                seen[route] = epochs
            except Exception as error:  # noqa: BLE001 - reported by the test
                failures.append(f"client {index} {route}: {error!r}"[:800])
                return
            if done.is_set() and count >= 8:
                return

    threads = [threading.Thread(target=write_while_served)]
    threads += [threading.Thread(target=client, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    writer.close()
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures[:5]
    # Once the writing stopped, everyone sees every epoch.
    assert check_live_series(strict_json(served.get("/series?run=live").data)) == final_epochs


# -- SIGKILL mid-epoch -----------------------------------------------------------------

TRAIN_UNTIL_KILLED = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import keras
    from tb_stagnation import StagnationCallback

    class Pace(keras.callbacks.Callback):
        # After StagnationCallback in the list: an epoch printed here is flushed.
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.02)  # 16 batches: an epoch takes ~0.3 s

        def on_epoch_end(self, epoch, logs=None):
            print(f"epoch {epoch} written", flush=True)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1000, batch_size=32, verbose=0,
              callbacks=[StagnationCallback(log_dir=sys.argv[1]), Pace()])
    """
)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A real training killed with SIGKILL mid-epoch: (logdir, epochs it finished)."""
    root = tmp_path_factory.mktemp("killed")
    process = subprocess.Popen(
        [sys.executable, "-c", TRAIN_UNTIL_KILLED, str(root / "run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    finished = -1
    try:
        deadline = time.monotonic() + 120
        while finished < 4 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("epoch "):
                finished = int(line.split()[1])
        time.sleep(0.1)  # into the next epoch's batches
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        # A busy machine may have read the pipe late: the epochs the process
        # printed before it died are what it finished.
        for line in process.stdout.read().splitlines():
            if line.startswith("epoch "):
                finished = int(line.split()[1])
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert finished >= 4, "the training did not get going"
    return root, finished + 1


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_sigkill_mid_epoch_keeps_every_complete_epoch(killed_run, use_data_server):
    root, finished = killed_run
    run = read_runs(root, use_data_server)["run"]
    # Every epoch reported finished is there, whole; at most one more made it
    # to disk between the print and the kill.
    assert run.epochs.tolist() == list(range(run.num_epochs))
    assert finished <= run.num_epochs <= finished + 1
    for tag in (tags.logs_tag("loss"), tags.GRAD_GLOBAL_NORM, tags.UPDATE_GLOBAL_RATIO):
        assert run.scalar_present[tag].all() and np.isfinite(run.scalar(tag)).all(), tag
    assert np.isfinite(run.layer_stat(tags.LAYER_GRAD_NORM)).all()
    assert run.model_card is not None and len(run.layer_names) == 2
    report = analyze_run(run)
    check_schema(report)
    assert report["epochs"] == run.num_epochs


def test_sigkill_mid_epoch_cli_analyses_the_run(killed_run):
    root, finished = killed_run
    status, out, err = run_cli("report", str(root), "--json")
    assert status in (0, 1) and "Traceback" not in err
    (report,) = strict_json(out)["runs"]
    assert report["run"] == "run" and report["source"] == "callback"
    assert finished <= report["epochs"] <= finished + 1


# -- the disk fills up under the callback ------------------------------------------------

TRAIN_ONTO_A_FULL_DISK = textwrap.dedent(
    """
    import glob, os, resource, signal, sys, warnings
    import numpy as np
    import keras
    from tb_stagnation import StagnationCallback

    log_dir = sys.argv[1]

    class FillTheDisk(keras.callbacks.Callback):
        # After StagnationCallback: epochs 0 and 1 are on disk when this runs.
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                (path,) = glob.glob(os.path.join(log_dir, "stagnation", "*tfevents*"))
                # The file may grow by 20 more bytes, then every write fails
                # (EFBIG, as ENOSPC would): the next epoch's record is cut short.
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
                resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 20, hard))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=6, batch_size=32, verbose=0,
                            callbacks=[StagnationCallback(log_dir=log_dir), FillTheDisk()])
    ours = [str(w.message) for w in caught if "tb_stagnation" in w.filename
            or "StagnationCallback" in str(w.message)]
    print("EPOCHS", len(history.history["loss"]))
    print("WARNINGS", len(ours))
    for message in ours:
        print("WARNING", message)
    """
)


def test_disk_full_under_the_callback_costs_one_warning_and_keeps_what_was_written(tmp_path):
    """Simulated with RLIMIT_FSIZE in the training process (no tmpfs without
    root): writes past the limit fail with EFBIG, the way they fail with ENOSPC
    on a full disk, and the record being written is cut short on disk."""
    log_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_ONTO_A_FULL_DISK, str(log_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "EPOCHS 6" in lines  # training went on to the end
    assert "WARNINGS 1" in lines, done.stdout
    (warning,) = [line for line in lines if line.startswith("WARNING ")]
    assert "cannot write to" in warning and "File too large" in warning  # names the failure
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr
    for use_data_server in (True, False) if HAS_DATA_SERVER else (False,):
        run = read_runs(tmp_path, use_data_server)["run"]
        assert run.epochs.tolist() == [0, 1], use_data_server
        assert run.scalar_present[tags.logs_tag("loss")].all() and run.model_card is not None
    status, out, err = run_cli("report", str(tmp_path), "--json")
    assert status in (0, 1) and strict_json(out)["runs"][0]["epochs"] == 2


def test_an_epoch_loaded_in_two_halves_is_not_cached_torn(tmp_path):
    """TensorBoard's Python loader adds an event's values one at a time, so a
    request can see half of the newest epoch. Written here as two events of
    one step and one wall time, reloaded in between: once the second half is
    in, the answer must have it (the cache must not keep the half epoch)."""
    writer = SummaryWriter(str(tmp_path / "live" / tags.RUN_SUBDIR), flush_secs=3600)
    writer.write_model_card(0, {"layers": [{"name": f"dense_{i}"} for i in range(LIVE_LAYERS)]})
    for epoch in range(3):
        write_live_epoch(writer, epoch)
    writer.write_step(3, scalars={tags.logs_tag("loss"): expected_loss(3)}, wall_time=1.7e9 + 3)
    writer.flush()
    served = ServedPlugin(str(tmp_path))
    half = strict_json(served.get("/series?run=live").data)
    assert half["epochs"] == [0, 1, 2]  # the half-loaded epoch is held back, not shown torn
    write_live_epoch(writer, 3)  # the rest of epoch 3: same step, same wall time
    writer.flush()
    served.reload(str(tmp_path))
    assert check_live_series(strict_json(served.get("/series?run=live").data)) == 4
    assert strict_json(served.get("/report?run=live").data)["epochs"] == 4
    writer.close()


# -- a newer format version, through the CLI ------------------------------------------


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_cli_names_what_a_newer_format_version_added(
    tmp_path, monkeypatch, capsys, use_data_server
):
    newer = json.dumps({"version": metadata.FORMAT_VERSION + 1, "kind": "scalar"}).encode()
    writer = EventFileWriter(str(tmp_path / "future" / tags.RUN_SUBDIR))
    for epoch in range(4):
        values = []
        for tag, value in ((tags.logs_tag("loss"), 1.0 / (epoch + 1)), ("future/thing", 2.0)):
            value = summary_pb2.Summary.Value(
                tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(value))
            )
            if epoch == 0:
                value.metadata.plugin_data.plugin_name = metadata.PLUGIN_NAME
                value.metadata.plugin_data.content = newer
                value.metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
            values.append(value)
        writer.add_event(
            event_pb2.Event(
                step=epoch, wall_time=1.7e9 + epoch, summary=summary_pb2.Summary(value=values)
            )
        )
    writer.close()
    status, out, err = run_cli_in_process(
        monkeypatch, capsys, "report", str(tmp_path), use_data_server=use_data_server
    )
    assert status == 0 and out.splitlines()[1].split()[:3] == ["future", "callback", "4"]
    (warning,) = err.strip().splitlines()  # the text report hides notes of healthy runs
    assert warning.startswith("tb-stagnation: warning: future: Written by a newer tb_stagnation")
    assert "future/thing" in warning and "known fields were used" in warning


# -- malformed and oversized queries on every route --------------------------------------

QUERIES = [
    "",
    "?",
    "?run",
    "?run=",
    "?=x",
    "?run=ok&run=ok",
    "?run=%ff%fe",
    "?run=%",
    "?run=%zz",
    "?run=ok&&&",
    "?run=ok%00",
    "?run=" + "a" * 100_000,
    "?run=" + "%41" * 100_000,
    "?" + "&".join(f"k{i}=v" for i in range(20_000)),
    "?run=ok;other=1",
    "?run=" + urllib.parse.quote("<script>alert(1)</script>"),
    "?run=..%2F..%2F..%2Fetc%2Fpasswd",
    "?run=ok#fragment",
]


@pytest.fixture(scope="module")
def served_ok(tmp_path_factory):
    root = tmp_path_factory.mktemp("queries")
    write_callback_run(str(root / "ok"))
    return ServedPlugin(str(root))


@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
@pytest.mark.parametrize("route", ["/runs", "/report", "/series", "/index.js", "/static/index.js"])
def test_every_route_answers_any_query_without_a_500(served_ok, route, query):
    response = served_ok.get(route + query)
    assert response.status_code in (200, 400, 404), (route, query[:80], response.status_code)
    if route.endswith(".js"):
        # Static files take no parameters: the query is ignored.
        assert response.status_code == 200 and b"render" in response.data
        return
    assert response.headers["Content-Type"] == "application/json"
    body = strict_json(response.data)
    if response.status_code == 200:
        assert route == "/runs" or body["run"] == "ok"
    else:
        assert set(body) == {"error"} and 0 < len(body["error"]) <= 400, body
        assert "Traceback" not in body["error"]


class ReloadBeforeTensorReads(data_provider.MultiplexerDataProvider):
    """TensorBoard's own provider, whose reload lands at the worst moment for
    a reader: after it read the scalars, before it reads the tensors."""

    def __init__(self, multiplexer, logdir, before_tensors) -> None:
        super().__init__(multiplexer, logdir)
        self.before_tensors = before_tensors

    def read_tensors(self, ctx=None, **kwargs):
        self.before_tensors()
        return super().read_tensors(ctx, **kwargs)


def test_an_epoch_loaded_between_two_reads_is_not_a_torn_epoch(tmp_path):
    """What the 20 clients above hit now and then, made to happen every time:
    TensorBoard loads a new epoch between the scalar and the tensor reads."""
    writer = SummaryWriter(str(tmp_path / "live" / tags.RUN_SUBDIR), flush_secs=3600)
    writer.write_model_card(0, {"layers": [{"name": f"dense_{i}"} for i in range(LIVE_LAYERS)]})
    write_live_epoch(writer, 0)
    writer.flush()
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0}
    )
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    written = [1]

    def load_one_more_epoch():
        write_live_epoch(writer, written[0])
        writer.flush()
        multiplexer.Reload()
        written[0] += 1

    provider = ReloadBeforeTensorReads(multiplexer, str(tmp_path), load_one_more_epoch)
    plugin = StagnationPlugin(base_plugin.TBContext(data_provider=provider, logdir=str(tmp_path)))
    client = werkzeug_test.Client(application.TensorBoardWSGI([plugin], data_provider=provider))
    for _ in range(4):
        for route in ("/series?run=live", "/report?run=live", "/runs"):
            response = client.get(PREFIX + route)
            assert response.status_code == 200, response.data[:300]
            body = strict_json(response.data)
            if route.startswith("/series"):
                shown = check_live_series(body)  # no epoch without its scalars
                assert shown < written[0]  # the epoch loaded mid-read waits for the next answer
    writer.close()


# -- a value TensorBoard cannot decode ---------------------------------------------------


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_an_undecodable_value_costs_its_tag_not_the_logdir(tmp_path, use_data_server):
    """A foreign writer's "scalar" holding two floats (or none) makes
    TensorBoard's Python provider raise for the whole read. The run keeps
    every other tag and says which one it skipped; other runs are untouched."""
    write_callback_run(str(tmp_path / "good"), epochs=4)
    write_callback_run(str(tmp_path / "odd"), epochs=4)
    writer = EventFileWriter(str(tmp_path / "odd" / tags.RUN_SUBDIR))
    for step, tensor in ((0, np.float32([1.0, 2.0])), (1, np.zeros(0, np.float32))):
        value = summary_pb2.Summary.Value(
            tag="logs/odd", tensor=tensor_util.make_tensor_proto(tensor)
        )
        value.metadata.CopyFrom(metadata.create_summary_metadata(metadata.KIND_SCALAR))
        writer.add_event(
            event_pb2.Event(step=step, wall_time=1.7e9, summary=summary_pb2.Summary(value=[value]))
        )
    writer.close()
    runs = read_runs(tmp_path, use_data_server)
    assert runs["good"].epochs.tolist() == runs["odd"].epochs.tolist() == [0, 1, 2, 3]
    odd = runs["odd"]
    assert np.isfinite(odd.scalar(tags.logs_tag("loss"))).all()
    if not use_data_server:  # the Rust data server drops such values when loading
        assert any("logs/odd" in note and "could not decode" in note for note in odd.notes)
    assert "logs/odd" not in odd.scalars or not odd.scalar_present["logs/odd"].any()
    served = ServedPlugin(str(tmp_path))
    rows = {row["run"]: row for row in strict_json(served.get("/runs").data)["runs"]}
    assert rows["odd"]["epochs"] == rows["good"]["epochs"] == 4
