"""Past runs written by other tools: a custom training loop logging with
`tf.summary`, in TensorFlow's own tutorial layout (`train/` and `test/`
folders, tags `loss` and `accuracy`, one point per epoch) and in the layout of
PyTorch's examples (one folder, `Loss/train` every step, `Loss/test` and a
percent `Accuracy/test` per epoch at the global step); the latter also in
PyTorch's record format (`simple_value` summaries, which
`torch.utils.tensorboard` writes through TensorBoard's own EventFileWriter).
Real trainings, read through TensorBoard's data providers and the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tb_stagnation.analysis.api import analyze
from tb_stagnation.reader import other_tools

pytestmark = pytest.mark.slow


def _digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return x[:1200], y[:1200].astype("int32"), x[1200:], y[1200:].astype("int32")


def _custom_loop(learning_rate: float, epochs: int, on_step=None, on_epoch=None) -> None:
    """A GradientTape loop as TensorFlow's custom-training tutorial writes it."""
    keras.utils.set_random_seed(0)
    x, y, x_test, y_test = _digits()
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    optimizer = keras.optimizers.SGD(learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    step = 0
    for epoch in range(epochs):
        losses, correct = [], 0
        for start in range(0, len(x), 64):
            xb, yb = x[start : start + 64], y[start : start + 64]
            with tf.GradientTape() as tape:
                logits = model(xb, training=True)
                loss = loss_fn(yb, logits)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            losses.append(float(loss))
            correct += int(np.sum(np.argmax(logits, axis=1) == yb))
            if on_step:
                on_step(step, float(loss))
            step += 1
        test_logits = model(x_test)
        test_loss = float(loss_fn(y_test, test_logits))
        test_acc = float(np.mean(np.argmax(test_logits, axis=1) == y_test))
        on_epoch(epoch, step, float(np.mean(losses)), correct / len(x), test_loss, test_acc)


def _tf_summary_run(log_dir, learning_rate: float, epochs: int = 15) -> None:
    """TensorFlow's tutorial layout: `train/` and `test/` writers, tags
    `loss` and `accuracy`, step = epoch."""
    train_writer = tf.summary.create_file_writer(str(log_dir / "train"))
    test_writer = tf.summary.create_file_writer(str(log_dir / "test"))

    def on_epoch(epoch, _step, loss, acc, test_loss, test_acc):
        with train_writer.as_default():
            tf.summary.scalar("loss", loss, step=epoch)
            tf.summary.scalar("accuracy", acc, step=epoch)
        with test_writer.as_default():
            tf.summary.scalar("loss", test_loss, step=epoch)
            tf.summary.scalar("accuracy", test_acc, step=epoch)

    _custom_loop(learning_rate, epochs, on_epoch=on_epoch)
    train_writer.close()
    test_writer.close()


class _TfSummaryWriter:
    """`add_scalar` over a `tf.summary` file writer."""

    def __init__(self, log_dir) -> None:
        self._writer = tf.summary.create_file_writer(str(log_dir))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        with self._writer.as_default():
            tf.summary.scalar(tag, value, step=step)

    def close(self) -> None:
        self._writer.close()


class _SimpleValueWriter:
    """Events as PyTorch's `SummaryWriter.add_scalar` writes them: one
    `Summary.Value(tag, simple_value)` per call, no plugin metadata."""

    def __init__(self, log_dir) -> None:
        self._writer = EventFileWriter(str(log_dir))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]
        )
        self._writer.add_event(event_pb2.Event(summary=summary, step=step, wall_time=1.0 + step))

    def close(self) -> None:
        self._writer.close()


def _pytorch_style_run(
    log_dir, learning_rate: float, epochs: int = 12, loss_tag="Loss/train", writer_class=None
):
    """One folder; the training loss every step at the global step, the test
    loss and accuracy (in percent, as PyTorch's MNIST example prints it) once
    per epoch at the global step."""
    writer = (writer_class or _TfSummaryWriter)(log_dir)

    def on_epoch(_epoch, step, _loss, _acc, test_loss, test_acc):
        writer.add_scalar("Loss/test", test_loss, step)
        writer.add_scalar("Accuracy/test", 100.0 * test_acc, step)

    _custom_loop(
        learning_rate,
        epochs,
        on_step=lambda step, loss: writer.add_scalar(loss_tag, loss, step),
        on_epoch=on_epoch,
    )
    writer.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("other_tools")
    _tf_summary_run(root / "tutorial_healthy", learning_rate=0.1)
    _tf_summary_run(root / "tutorial_lr_tiny", learning_rate=1e-6)
    _pytorch_style_run(root / "runs" / "healthy", learning_rate=0.1)
    _pytorch_style_run(root / "runs" / "lr_tiny", learning_rate=1e-6)
    _pytorch_style_run(root / "custom_names", learning_rate=1e-6, loss_tag="objective")
    _pytorch_style_run(
        root / "pytorch_format" / "lr_tiny", learning_rate=1e-6, writer_class=_SimpleValueWriter
    )
    return root


@pytest.fixture(scope="module")
def reports(logdir):
    return {report["run"]: report for report in analyze(str(logdir))["runs"]}


def test_runs_of_other_tools_are_listed_with_their_own_source(reports):
    assert set(reports) == {
        "tutorial_healthy",
        "tutorial_lr_tiny",
        "runs/healthy",
        "runs/lr_tiny",
        "pytorch_format/lr_tiny",
    }, "the test/ folder joins its train/ sibling; a run without a loss-named tag is not listed"
    assert {report["source"] for report in reports.values()} == {"scalars"}


@pytest.mark.parametrize("name", ["tutorial_healthy", "runs/healthy"])
def test_healthy_runs_of_other_tools_are_not_flagged(reports, name):
    report = reports[name]
    assert report["healthy"], report
    assert report["stalled_epochs"] == []
    assert report["findings"] == []


@pytest.mark.parametrize("name", ["tutorial_lr_tiny", "runs/lr_tiny", "pytorch_format/lr_tiny"])
def test_a_flat_loss_of_another_tool_is_a_stall(reports, name):
    report = reports[name]
    assert not report["healthy"]
    assert len(report["stalled_epochs"]) >= report["epochs"] // 2, report


def test_per_step_logs_are_read_in_windows_and_the_notes_say_so(reports):
    report = reports["runs/healthy"]
    # 12 epochs x 19 steps = 228 logged steps; Loss/test, logged once per epoch,
    # marks the epochs: the first logged step, then one mean per epoch.
    assert report["epochs"] == 13
    notes = " ".join(report["notes"])
    assert "`Loss/train`" in notes and "mark 12 epochs" in notes
    assert "percentages" in notes  # Accuracy/test was logged in percent


def test_windows_without_epoch_marks(tmp_path):
    # A training loss alone, every step: fixed windows of logged steps.
    writer = _TfSummaryWriter(tmp_path / "run")
    for step in range(300):
        writer.add_scalar("train_loss", 2.3 * 0.99**step, step)
    writer.close()
    (report,) = analyze(str(tmp_path))["runs"]
    assert report["epochs"] <= other_tools.MAX_POINTS + 1
    assert any("a window of 10 logged steps" in note for note in report["notes"])
    assert report["healthy"]


def test_tutorial_layout_reads_the_test_folder_as_validation(logdir):
    from tb_stagnation.reader.logdir import open_logdir

    with open_logdir(str(logdir)) as source:
        (run,) = list(source.iter_runs(["tutorial_healthy"]))
    val_loss = run.scalar("logs/val_loss")
    assert val_loss is not None and np.isfinite(val_loss).all()
    assert list(run.epochs) == list(range(15))


def test_cli_loss_tag_picks_a_tag_no_name_rule_finds(logdir):
    def cli(*args):
        done = subprocess.run(
            [sys.executable, "-m", "tb_stagnation.cli", "report", str(logdir), "--json", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done, json.loads(done.stdout) if done.stdout.strip() else None

    done, result = cli("--loss-tag", "objective", "--run", "custom_names")
    assert done.returncode in (0, 1), done.stderr
    (report,) = result["runs"]
    assert report["run"] == "custom_names" and report["stalled_epochs"]
    assert any("`objective`" in note for note in report["notes"])


@pytest.mark.parametrize(
    "names, loss, val_loss, accuracy",
    [
        (["loss", "accuracy"], "loss", None, "accuracy"),
        (["Loss/train", "Loss/test", "Accuracy/test"], "Loss/train", "Loss/test", None),
        (
            ["train_loss_step", "train_loss_epoch", "val_loss", "val_acc", "epoch"],
            "train_loss_epoch",
            "val_loss",
            None,
        ),
        (["train/loss", "eval/loss", "train/loss_scale"], "train/loss", "eval/loss", None),
        (["kl/loss", "reconstruction_error"], None, None, None),
    ],
)
def test_curve_tags_found_by_name(names, loss, val_loss, accuracy):
    curves = other_tools.find_curve_tags(names)
    if loss is None:
        assert curves is None
        return
    assert (curves.loss, curves.val_loss, curves.accuracy) == (loss, val_loss, accuracy)


def test_the_plugin_lists_and_serves_runs_of_other_tools(logdir):
    import urllib.parse

    from plugin_support import ServedPlugin

    served = ServedPlugin(str(logdir))
    rows = json.loads(served.get("/runs").data)["runs"]
    assert {row["run"]: row["source"] for row in rows}["runs/healthy"] == "scalars"
    for name in ("runs/healthy", "tutorial_lr_tiny"):
        query = "?run=" + urllib.parse.quote(name, safe="")
        report = served.get("/report" + query)
        series = served.get("/series" + query)
        assert report.status_code == series.status_code == 200, (name, series.data[:200])
        metrics = json.loads(series.data)["metrics"]
        assert {"loss", "val_loss"} <= set(metrics), metrics


def test_keras_batch_losses_before_the_first_epoch_are_no_other_tools_run(tmp_path):
    # keras.callbacks.TensorBoard(update_freq="batch") writes `batch_loss` in
    # train/ from the first step; until `epoch_loss` arrives that is still
    # Keras's run, not another tool's.
    writer = _TfSummaryWriter(tmp_path / "run" / "train")
    for step in range(40):
        writer.add_scalar("batch_loss", 2.3, step)
    writer.close()
    assert analyze(str(tmp_path))["runs"] == []
