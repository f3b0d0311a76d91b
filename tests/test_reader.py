"""The reader: logical runs out of TensorBoard's data loading, both loaders."""

import glob
import json
import os
import threading

import numpy as np
import pytest
from tensorboard import errors as tb_errors
from tensorboard.compat.proto import summary_pb2

from tb_stagnation.reader.errors import LogdirError
from tb_stagnation.reader.logdir import open_logdir
from tb_stagnation.reader.provider_reader import ProviderReader
from tb_stagnation.summary import metadata, tags
from tb_stagnation.summary.writer import SummaryWriter

LOADERS = [pytest.param(True, id="rust_data_server"), pytest.param(False, id="python_multiplexer")]
HOSTILE = "<img src=x onerror=alert(1)> ünï 🙂"


def write_run(run_dir, epochs=4, layers=("dense", HOSTILE), start=0):
    writer = SummaryWriter(os.path.join(run_dir, tags.RUN_SUBDIR))
    writer.write_model_card(start, {"layers": [{"name": name} for name in layers]})
    for epoch in range(start, start + epochs):
        writer.write_step(
            epoch,
            scalars={tags.logs_tag("loss"): 1.0 / (epoch + 1), tags.logs_tag("val_loss"): np.nan},
            layer_stats={tags.LAYER_GRAD_NORM: [epoch, 2.0 * epoch][: len(layers)]},
            class_counts=[3, 1],
        )
    writer.close()


def read_all(logdir, use_data_server):
    with open_logdir(str(logdir), use_data_server=use_data_server) as source:
        return {run.name: run for run in source.read_runs(source.list_runs())}


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_reads_callback_runs_aligned_on_epochs(tmp_path, use_data_server):
    write_run(tmp_path / "a")
    write_run(tmp_path / "nested" / HOSTILE)
    runs = read_all(tmp_path, use_data_server)
    assert set(runs) == {"a", f"nested/{HOSTILE}"}
    run = runs["a"]
    assert run.source == "callback"
    assert run.epochs.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(run.scalar("logs/loss"), [1, 1 / 2, 1 / 3, 1 / 4], rtol=1e-6)
    assert np.isnan(run.scalar("logs/val_loss")).all()  # NaN is kept, not dropped
    assert run.layer_names == ["dense", HOSTILE]
    assert run.layer_stat(tags.LAYER_GRAD_NORM).tolist() == [[0, 0], [1, 2], [2, 4], [3, 6]]
    assert run.class_counts.tolist() == [[3, 1]] * 4
    assert run.updated > 0 and run.notes == []


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_logdir_itself_is_a_run(tmp_path, use_data_server):
    write_run(tmp_path)
    assert list(read_all(tmp_path, use_data_server)) == ["."]


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_plain_keras_runs_are_mapped_to_our_tags(tmp_path, use_data_server):
    import keras

    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    model.fit(
        x,
        y,
        epochs=3,
        validation_data=(x, y),
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path / "k"))],
    )
    run = read_all(tmp_path, use_data_server)["k"]
    assert run.source == "keras"
    assert run.epochs.tolist() == [0, 1, 2]
    for tag in (
        "logs/loss",
        "logs/accuracy",
        "logs/val_loss",
        "logs/val_accuracy",
        tags.LEARNING_RATE,
    ):
        assert np.isfinite(run.scalar(tag)).all(), tag
    assert run.layer_stats == {}
    # The model config Keras logs (write_graph=True) becomes a model card.
    card = run.model_card
    assert card["source"] == "keras_config" and card["loss"] == "binary_crossentropy"
    assert card["output_activation"] == "sigmoid" and card["output_shape"] == [None, 1]
    assert card["optimizer"]["class"] == "SGD"


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_callback_data_wins_over_keras_data_in_one_log_dir(tmp_path, use_data_server):
    write_run(tmp_path / "both")
    keras_dir = tmp_path / "both" / "train"
    writer = SummaryWriter(str(keras_dir))  # stands in for Keras's writer: any scalars
    writer.write_step(0, scalars={"epoch_loss": 1.0})
    writer.close()
    runs = read_all(tmp_path, use_data_server)
    assert list(runs) == ["both"] and runs["both"].source == "callback"


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_truncated_event_file_keeps_complete_epochs(tmp_path, use_data_server):
    write_run(tmp_path / "cut", epochs=5)
    (path,) = glob.glob(str(tmp_path / "cut" / "stagnation" / "*tfevents*"))
    with open(path, "r+b") as events:
        events.truncate(os.path.getsize(path) - 7)  # the last epoch, half written
    run = read_all(tmp_path, use_data_server)["cut"]
    assert run.epochs.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_newer_format_version_is_read_with_a_note(tmp_path, use_data_server, monkeypatch):
    newer = json.dumps({"version": metadata.FORMAT_VERSION + 1, "kind": "scalar"}).encode()

    def newer_metadata(kind):
        return summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(
                plugin_name=metadata.PLUGIN_NAME, content=newer
            ),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        )

    monkeypatch.setattr(metadata, "create_summary_metadata", newer_metadata)
    writer = SummaryWriter(str(tmp_path / "future" / "stagnation"))
    writer.write_step(0, scalars={"logs/loss": 1.0, "future/thing": 2.0})
    writer.close()
    run = read_all(tmp_path, use_data_server)["future"]
    assert run.scalar("logs/loss").tolist() == [1.0]
    assert "future/thing" not in run.scalars
    assert any("newer" in note and "future/thing" in note for note in run.notes)


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_layer_count_mismatch_falls_back_to_positions(tmp_path, use_data_server):
    write_run(tmp_path / "m", layers=("only_one",))
    writer = SummaryWriter(str(tmp_path / "m" / "stagnation"))
    writer.write_step(
        9,
        scalars={tags.logs_tag("loss"): 0.1, tags.logs_tag("val_loss"): np.nan},
        layer_stats={tags.LAYER_GRAD_NORM: [1.0, 2.0, 3.0]},
        class_counts=[3, 1],
    )
    writer.close()
    run = read_all(tmp_path, use_data_server)["m"]
    assert run.layer_names == ["layer_0", "layer_1", "layer_2"]
    assert any("layers" in note for note in run.notes)


def test_unreadable_logdirs_give_one_line_reasons(tmp_path):
    with pytest.raises(LogdirError, match="no such directory"):
        with open_logdir(str(tmp_path / "missing")):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(LogdirError, match="not a directory"):
        with open_logdir(str(tmp_path / "file")):
            pass


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_an_epoch_half_loaded_is_left_for_the_next_read(tmp_path, use_data_server):
    write_run(tmp_path / "live", epochs=4)
    writer = SummaryWriter(str(tmp_path / "live" / "stagnation"))
    writer.write_step(4, scalars={tags.logs_tag("loss"): 0.1})  # the rest not loaded yet
    writer.close()
    assert read_all(tmp_path, use_data_server)["live"].epochs.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_empty_and_garbage_logdirs_have_no_runs(tmp_path, use_data_server):
    (tmp_path / "junk" / "stagnation").mkdir(parents=True)
    (tmp_path / "junk" / "stagnation" / "events.out.tfevents.1.x").write_bytes(b"\x00garbage" * 50)
    assert read_all(tmp_path, use_data_server) == {}


@pytest.mark.parametrize("use_data_server", LOADERS)
def test_a_logged_nan_differs_from_an_epoch_that_logged_nothing(tmp_path, use_data_server):
    from tb_stagnation.plugin.series import build_series

    writer = SummaryWriter(str(tmp_path / "gaps" / "stagnation"))
    for epoch in range(4):  # like validation_freq=2, with a NaN validation loss at epoch 2
        scalars = {"logs/loss": 1.0}
        if epoch % 2 == 0:
            scalars["logs/val_loss"] = np.nan if epoch == 2 else 0.5
        writer.write_step(epoch, scalars=scalars)
    writer.close()
    run = read_all(tmp_path, use_data_server)["gaps"]
    assert run.scalar_present["logs/val_loss"].tolist() == [True, False, True, False]
    series = build_series(run, {"stalled_epochs": []})
    assert series["metrics"]["val_loss"] == [0.5, None, "NaN", None]


class _ListingCallsMeet:
    """A provider whose three listing calls each wait for the other two."""

    def __init__(self, error=None):
        self._all_called = threading.Barrier(3, timeout=30)
        self._error = error

    def _listing(self):
        self._all_called.wait()
        return {}

    def list_scalars(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        return self._listing()

    def list_tensors(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        self._listing()
        if self._error is not None:
            raise self._error
        return {}


def test_a_listing_makes_its_provider_calls_side_by_side():
    # One after the other, each would be a round trip to the Rust data server
    # (here: the first call would wait for the others until the barrier broke).
    assert ProviderReader(_ListingCallsMeet()).list_runs() == {}


def test_an_error_of_one_listing_call_is_raised_as_it_is():
    error = tb_errors.NotFoundError("no experiment")
    with pytest.raises(tb_errors.NotFoundError, match="no experiment"):
        ProviderReader(_ListingCallsMeet(error)).list_runs()


def test_the_data_server_is_read_from_a_process_holding_many_files_open(tmp_path):
    """A notebook or a TensorBoard with the Python loader can hold over 1,024
    files open; the data server's log pipe then gets a descriptor that
    `select.select` refuses (ValueError), and reading the logdir failed."""
    write_run(tmp_path / "a")
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        runs = read_all(tmp_path, use_data_server=True)
    finally:
        for descriptor in held:
            os.close(descriptor)
    assert runs["a"].epochs.tolist() == [0, 1, 2, 3]
