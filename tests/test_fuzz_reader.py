"""Fuzz: arbitrary event files in our format, read and analysed end to end.

Hypothesis writes event files as raw TFRecord bytes, the way any writer
(ours, a newer one, a foreign one borrowing our plugin name, a crashed one)
can leave them: arbitrary tags (hostile strings included), float32 values
including NaN and Inf, duplicate and out-of-order steps, vectors of any
length, tensors of the wrong dtype or rank, model cards that are not JSON,
plugin metadata that is malformed or from a newer version, NaN wall times,
records cut off or followed by garbage. Each logdir is read through
`open_logdir` with TensorBoard's Python multiplexer and its Rust data server,
then analysed, turned into the `/series` answer and rendered by the CLI.

Properties: no exception escapes any of it; `RunData` is aligned on its
epochs; the report keeps the http_api.md schema; every answer is strict JSON
(no bare NaN) and every `/series` array has one entry per epoch.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import urllib.parse

import numpy as np
import pytest
from analysis_helpers import check_schema
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from plugin_support import ServedPlugin
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

from tb_stagnation import cli
from tb_stagnation.analysis.report import analyze_run
from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, SOURCE_KERAS, RunData
from tb_stagnation.plugin import jsonable
from tb_stagnation.plugin.series import build_series
from tb_stagnation.reader.logdir import _data_server_binary, open_logdir
from tb_stagnation.reader.provider_reader import ProviderReader
from tb_stagnation.summary import metadata, tags

HAS_DATA_SERVER = _data_server_binary() is not None

# -- strategies ------------------------------------------------------------------

# Protobuf strings must be valid UTF-8: no lone surrogates.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
HOSTILE = ["<img src=x onerror=alert(1)>", "../../etc", "a\x00b", "ünï 🙂", "", "/", "logs/"]
TAGS = st.one_of(
    st.sampled_from(
        [
            tags.logs_tag("loss"),
            tags.logs_tag("accuracy"),
            tags.logs_tag("val_loss"),
            tags.LEARNING_RATE,
            tags.GRAD_GLOBAL_NORM,
            tags.UPDATE_GLOBAL_RATIO,
            tags.PRED_TOP_CLASS_SHARE,
            tags.INPUT_MAX_ABS,
            tags.BATCHES_DISTINCT,
            tags.BATCHES_SEEN,
            tags.LABEL_VARIANCE,
            tags.BATCH_LOSS,
            *tags.LAYER_STATS,
            tags.LABEL_CLASS_COUNTS,
            tags.MODEL_CARD,
        ]
    ),
    st.builds(lambda key: tags.LOGS_PREFIX + key, TEXT),
    st.sampled_from(HOSTILE),
    TEXT,
)
FLOAT32 = st.one_of(
    st.floats(width=32),  # NaN and +-Inf included
    st.sampled_from([0.0, 1.0, 2.302585, 1e-9, float("nan"), float("inf"), -float("inf")]),
)
STEPS = st.one_of(
    st.integers(min_value=0, max_value=8),  # small: duplicates are likely
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
WALL_TIMES = st.one_of(
    st.floats(min_value=1e9, max_value=2e9),
    st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e300]),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
CARDS = st.one_of(
    st.builds(
        lambda names, extra: {"layers": [{"name": n, "type": "Dense"} for n in names], **extra},
        st.lists(st.one_of(TEXT, st.sampled_from(HOSTILE)), max_size=4),
        st.dictionaries(
            st.sampled_from(["loss", "task", "num_classes", "output_activation", "optimizer"]),
            JSON_VALUES,
            max_size=3,
        ),
    ),
    JSON_VALUES,
)


def _content(version, kind) -> bytes:
    return json.dumps({"version": version, "kind": kind}).encode()


CONTENTS = st.one_of(
    st.sampled_from(
        [
            _content(1, metadata.KIND_SCALAR),
            _content(1, metadata.KIND_LAYER_STAT),
            _content(1, metadata.KIND_MODEL_CARD),
        ]
    ),
    st.builds(
        _content, st.integers(min_value=-2, max_value=2**70), st.sampled_from(["scalar", "x"])
    ),
    st.builds(lambda value: json.dumps(value).encode(), JSON_VALUES),
    st.binary(max_size=8),
)
DATA_CLASSES = st.sampled_from(
    [
        summary_pb2.DATA_CLASS_SCALAR,
        summary_pb2.DATA_CLASS_TENSOR,
        summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
        summary_pb2.DATA_CLASS_UNKNOWN,
    ]
)


def _float_tensor(values, shape) -> tensor_pb2.TensorProto:
    array = np.asarray(values, dtype=np.float32).reshape(shape)
    return tensor_util.make_tensor_proto(array)


@st.composite
def tensors(draw) -> tensor_pb2.TensorProto:
    kind = draw(st.sampled_from(["scalar", "vector", "matrix", "string", "double", "int", "empty"]))
    if kind == "scalar":
        return _float_tensor(draw(FLOAT32), ())
    if kind == "vector":
        return _float_tensor(draw(st.lists(FLOAT32, max_size=6)), (-1,))
    if kind == "matrix":
        return _float_tensor(draw(st.lists(FLOAT32, min_size=4, max_size=4)), (2, 2))
    if kind == "string":
        text = draw(
            st.one_of(
                st.builds(lambda card: json.dumps(card).encode(), CARDS),
                st.binary(max_size=12),  # not UTF-8, not JSON
            )
        )
        return tensor_util.make_tensor_proto(np.array(text, dtype=object))
    if kind == "double":
        return tensor_util.make_tensor_proto(np.float64(draw(FLOAT32)))
    if kind == "int":
        return tensor_util.make_tensor_proto(np.int64(draw(st.integers(-5, 5))))
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)  # no shape, no value


@st.composite
def values(draw) -> summary_pb2.Summary.Value:
    tag = draw(TAGS)
    if draw(st.booleans()):  # the well-formed value our writer produces, usually
        if tag in tags.LAYER_STATS or tag == tags.LABEL_CLASS_COUNTS:
            tensor = _float_tensor(draw(st.lists(FLOAT32, max_size=5)), (-1,))
            kind = metadata.KIND_LAYER_STAT
        elif tag == tags.MODEL_CARD:
            card = json.dumps(draw(CARDS)).encode()
            tensor = tensor_util.make_tensor_proto(np.array(card, dtype=object))
            kind = metadata.KIND_MODEL_CARD
        else:
            tensor, kind = _float_tensor(draw(FLOAT32), ()), metadata.KIND_SCALAR
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        value.metadata.CopyFrom(metadata.create_summary_metadata(kind))
        return value
    value = summary_pb2.Summary.Value(tag=tag, tensor=draw(tensors()))
    if draw(st.booleans()):
        value.metadata.plugin_data.plugin_name = draw(
            st.sampled_from([metadata.PLUGIN_NAME, "scalars", "other"])
        )
        value.metadata.plugin_data.content = draw(CONTENTS)
        value.metadata.data_class = draw(DATA_CLASSES)
    return value


EPOCH_SCALARS = [
    tags.logs_tag("accuracy"),
    tags.logs_tag("val_loss"),
    tags.LEARNING_RATE,
    tags.GRAD_GLOBAL_NORM,
    tags.GRAD_NONFINITE_FRACTION,
    tags.UPDATE_GLOBAL_RATIO,
    tags.PRED_TOP_CLASS_SHARE,
    tags.PRED_CLASS_ENTROPY,
    tags.INPUT_STD,
    tags.INPUT_MAX_ABS,
    tags.BATCHES_DISTINCT,
    tags.BATCHES_SEEN,
    tags.LABEL_VARIANCE,
]
# Loss-like values, often: a plateau or a descent is what the analysis looks for.
EPOCH_VALUES = st.one_of(st.floats(min_value=0.0, max_value=3.0), FLOAT32)


def _record(event: event_pb2.Event) -> bytes:
    buffer = io.BytesIO()
    RecordWriter(buffer).write(event.SerializeToString())
    return buffer.getvalue()


KERAS_TAGS = ["epoch_accuracy", "epoch_learning_rate", "evaluation_loss_vs_iterations", "x"]


@st.composite
def keras_events(draw) -> list[bytes]:
    """What keras.callbacks.TensorBoard writes into train/ and validation/."""
    scalar_tags = ["epoch_loss"] + draw(st.lists(st.sampled_from(KERAS_TAGS), unique=True))
    records = []
    for epoch in range(draw(st.integers(min_value=0, max_value=12))):
        values = []
        for tag in scalar_tags:
            value = summary_pb2.Summary.Value(tag=tag, tensor=_float_tensor(draw(EPOCH_VALUES), ()))
            if epoch == 0:
                value.metadata.CopyFrom(scalar_metadata.create_summary_metadata("", ""))
            values.append(value)
        step = epoch if draw(st.integers(0, 9)) else draw(STEPS)
        event = event_pb2.Event(
            step=step, wall_time=1.7e9 + epoch, summary=summary_pb2.Summary(value=values)
        )
        records.append(_record(event))
    return records


@st.composite
def epoch_events(draw) -> list[bytes]:
    """A run as StagnationCallback writes it: a model card, then one event per
    epoch holding the loss, a few other scalars, layer vectors, class counts.
    Values are float32 of any kind; steps are usually 0, 1, 2, ..."""
    width = draw(st.integers(min_value=0, max_value=4))
    records = []
    if draw(st.booleans()):
        card = draw(
            st.one_of(
                st.builds(
                    lambda loss, activation, task: card_of(width, loss, activation, task),
                    st.sampled_from(["sparse_categorical_crossentropy", "mse", "hinge", None]),
                    st.sampled_from(["softmax", "sigmoid", "linear", None]),
                    st.sampled_from(["classification", "binary", "regression", "unknown", 3]),
                ),
                CARDS,
            )
        )
        value = summary_pb2.Summary.Value(
            tag=tags.MODEL_CARD,
            tensor=tensor_util.make_tensor_proto(np.array(json.dumps(card).encode(), dtype=object)),
        )
        value.metadata.CopyFrom(metadata.create_summary_metadata(metadata.KIND_MODEL_CARD))
        records.append(
            _record(
                event_pb2.Event(step=0, wall_time=1.7e9, summary=summary_pb2.Summary(value=[value]))
            )
        )
    scalar_tags = [tags.logs_tag("loss")] + draw(
        st.lists(st.sampled_from(EPOCH_SCALARS), unique=True, max_size=5)
    )
    layer_tags = draw(st.lists(st.sampled_from(tags.LAYER_STATS), unique=True, max_size=3))
    with_counts = draw(st.booleans())
    first = set()
    for epoch in range(draw(st.integers(min_value=0, max_value=12))):
        step = epoch if draw(st.integers(0, 9)) else draw(STEPS)
        values = []

        def add(tag, tensor, kind, values=values):
            value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
            if tag not in first:  # metadata on a tag's first value, as our writer does
                first.add(tag)
                value.metadata.CopyFrom(metadata.create_summary_metadata(kind))
            values.append(value)

        for tag in scalar_tags:
            if draw(st.integers(0, 9)):  # a tag is sometimes missing at an epoch
                add(tag, _float_tensor(draw(EPOCH_VALUES), ()), metadata.KIND_SCALAR)
        for tag in layer_tags:
            # Usually the model's width; a refit model may log another.
            length = width if draw(st.integers(0, 9)) else draw(st.integers(0, 5))
            vector = draw(st.lists(EPOCH_VALUES, min_size=length, max_size=length))
            add(tag, _float_tensor(vector, (-1,)), metadata.KIND_LAYER_STAT)
        if with_counts:
            counts = draw(st.lists(st.floats(0, 100, width=32) | FLOAT32, min_size=1, max_size=4))
            add(tags.LABEL_CLASS_COUNTS, _float_tensor(counts, (-1,)), metadata.KIND_CLASS_COUNTS)
        wall_time = 1.7e9 + epoch if draw(st.integers(0, 9)) else draw(WALL_TIMES)
        event = event_pb2.Event(
            step=step, wall_time=wall_time, summary=summary_pb2.Summary(value=values)
        )
        records.append(_record(event))
    return records


def card_of(width, loss, activation, task) -> dict:
    return {
        "format_version": 1,
        "loss": loss,
        "task": task,
        "num_classes": 3,
        "output_activation": activation,
        "optimizer": {"class": "SGD", "learning_rate": 0.01},
        "layers": [
            {"name": f"dense_{i}", "type": "Dense", "activation": "relu", "trainable": True}
            for i in range(width)
        ],
    }


@st.composite
def odd_events(draw) -> bytes:
    """An event no writer of ours produces: any tags, tensors, metadata."""
    event = event_pb2.Event(
        step=draw(STEPS),
        wall_time=draw(WALL_TIMES),
        summary=summary_pb2.Summary(value=draw(st.lists(values(), max_size=4))),
    )
    return _record(event)


@st.composite
def event_files(draw, keras: bool = False) -> bytes:
    """One event file: a file_version header, a run's epochs with odd events
    mixed in, then damage (a cut, garbage appended, a flipped byte)."""
    records = []
    if draw(st.booleans()):
        records.append(_record(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2")))
    records += draw(keras_events() if keras else epoch_events())
    for odd in draw(st.lists(odd_events(), max_size=3)):
        records.insert(draw(st.integers(min_value=0, max_value=len(records))), odd)
    data = b"".join(records)
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "garbage", "flip"]))
    if damage == "truncate" and data:
        data = data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    elif damage == "garbage":
        data += draw(st.binary(min_size=1, max_size=40))
    elif damage == "flip" and data:
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return data


# A logdir: our folder of one logical run, sometimes a Keras folder beside it
# (same logical run, or another), sometimes several files in one folder.
LOGDIRS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "r/stagnation",
                "r/stagnation",
                "r/train",
                "r/validation",
                "k/train",
                "stagnation",
                "<img src=x>/stagnation",
            ]
        ),
        st.booleans(),
    ),
    min_size=1,
    max_size=3,
)


# -- the properties --------------------------------------------------------------


LOGDIRS = LOGDIRS.flatmap(
    lambda picked: st.tuples(
        *(
            st.tuples(
                st.just(folder),
                event_files(keras=not folder.endswith("stagnation") and keras_style),
            )
            for folder, keras_style in picked
        )
    )
)


def _write_logdir(root: str, files) -> None:
    for index, (folder, data) in enumerate(files):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        name = f"events.out.tfevents.{1700000000 + index}.fuzz.{index}.stagnation.v1"
        with open(os.path.join(root, folder, name), "wb") as handle:
            handle.write(data)


def _strict_json(data) -> object:
    """Parse JSON, refusing NaN / Infinity (what a browser's JSON.parse does)."""

    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON")

    return json.loads(data, parse_constant=refuse)


def _check_run_data(run) -> None:
    epochs = run.epochs
    assert epochs.dtype == np.int64 and epochs.ndim == 1
    assert np.all(epochs[1:] > epochs[:-1]), "epochs must be sorted and unique"
    count = epochs.shape[0]
    assert run.source in (SOURCE_CALLBACK, SOURCE_KERAS)
    for tag, series in run.scalars.items():
        assert series.shape == (count,), tag
        assert run.scalar_present[tag].shape == (count,), tag
    width = 0
    for tag, matrix in run.layer_stats.items():
        assert matrix.ndim == 2 and matrix.shape[0] == count, tag
        width = max(width, matrix.shape[1])
    if width:
        assert len(run.layer_names) == width
    assert all(isinstance(name, str) for name in run.layer_names)
    if run.class_counts is not None:
        assert run.class_counts.ndim == 2 and run.class_counts.shape[0] == count
    assert run.model_card is None or isinstance(run.model_card, dict)
    assert all(isinstance(note, str) for note in run.notes)


def _check_series(series: dict, report: dict) -> None:
    count = len(series["epochs"])
    assert series["epochs"] == sorted(set(series["epochs"]))

    def check(values, what):
        if values is None:
            return
        assert len(values) == count, what
        for value in values:
            assert (
                value is None
                or value in ("NaN", "Infinity", "-Infinity")
                or (isinstance(value, (int, float)) and math.isfinite(value))
            ), (what, value)

    for key, values in series["metrics"].items():
        check(values, key)
    check(series["learning_rate"], "learning_rate")
    for group in ("global", "predictions", "inputs", "batches"):
        for key, values in (series[group] or {}).items():
            check(values, f"{group}.{key}")
    layers = series["layers"]
    if layers is not None:
        names = layers["names"]
        assert len(layers["types"]) == len(layers["activations"]) == len(names)
        for key in (
            "grad_norm",
            "update_ratio",
            "weight_norm",
            "dead_fraction",
            "saturated_fraction",
        ):
            if layers[key] is not None:
                assert len(layers[key]) == len(names), key
                for row in layers[key]:
                    check(row, f"layers.{key}")
    assert series["stalled_epochs"] == report["stalled_epochs"]


def _read_analyse_render(root: str, use_data_server: bool) -> None:
    with open_logdir(root, use_data_server=use_data_server) as source:
        names = source.list_runs()
        runs = list(source.iter_runs(names))
    assert [run.name for run in runs] == names
    reports = []
    for run in runs:
        _check_run_data(run)
        report = analyze_run(run)
        check_schema(report)
        assert report["run"] == run.name and report["epochs"] <= run.num_epochs
        # What /report and /series send: the same encoding, strict JSON.
        report_json = _strict_json(jsonable.dumps(jsonable.to_jsonable(report)))
        assert report_json["run"] == run.name
        series = _strict_json(jsonable.dumps(build_series(run, report_json)))
        _check_series(series, report_json)
        assert series["epochs"] == run.epochs.tolist() and series["downsampled"] is None
        # The same run as a long one: pooled into buckets of a few epochs.
        pooled = _strict_json(jsonable.dumps(build_series(run, report_json, max_cells=12)))
        _check_series(pooled, report_json)
        if pooled["downsampled"] is not None:
            stride = pooled["downsampled"]["stride"]
            assert pooled["downsampled"]["original_epochs"] == run.num_epochs
            assert pooled["epochs"] == run.epochs[stride - 1 :: stride].tolist() + (
                [] if run.num_epochs % stride == 0 else [int(run.epochs[-1])]
            )
        reports.append(report)
    # What the CLI prints, both ways.
    text = cli.render_text(reports, width=80)
    assert text.endswith(".\n")
    document = json.dumps(cli._json_safe({"schema": 1, "runs": reports}), allow_nan=False)
    assert len(_strict_json(document)["runs"]) == len(reports)


FUZZ_SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(max_examples=150, **FUZZ_SETTINGS)
@given(LOGDIRS)
def test_python_multiplexer_reads_anything_without_raising(files):
    with tempfile.TemporaryDirectory(prefix="tb_stagnation_fuzz_") as root:
        _write_logdir(root, files)
        _read_analyse_render(root, use_data_server=False)


@pytest.mark.skipif(not HAS_DATA_SERVER, reason="tensorboard-data-server is not installed")
@settings(max_examples=30, **FUZZ_SETTINGS)
@given(LOGDIRS)
def test_rust_data_server_reads_anything_without_raising(files):
    with tempfile.TemporaryDirectory(prefix="tb_stagnation_fuzz_") as root:
        _write_logdir(root, files)
        _read_analyse_render(root, use_data_server=True)


EPOCHLESS_VECTORS = (
    b"\x89\x00\x00\x00\x00\x00\x00\x004Q\xaa\\\t\x00\x00\x00\x00e\xcd\xcdA\x10\x02*|\n\x17\n\tlogs/lossB\n"
    b"\x08\x01\x12\x00*\x04\x00\x00\x00\x00\na\n\x13layers/update_ratioB\x12\x08\x01\x12\x04\x12"
    b'\x02\x08\x02"\x08\x00\x00\x00\x00\x00\x00\x00\x00J6\n2\n\nstagnation\x12${"version'
    b'": 1, "kind": "layer_stat"} \x02\xd8\x084\x96\x0c\x01\x00\x00\x00\x00\x00'
    b"\x00\xf2\xf8m\xd4\t\x00\x00\x00\x00e\xcd\xcdA*\x80\x02\nR\n\x10layers/grad_normB\x06\x08"
    b'\x01\x12\x02\x12\x00J6\n2\n\nstagnation\x12${"version": 1, "k'
    b'ind": "layer_stat"} \x02\nT\n\x12layers/weight_n'
    b'ormB\x06\x08\x01\x12\x02\x12\x00J6\n2\n\nstagnation\x12${"version":'
    b' 1, "kind": "layer_stat"} \x02\nT\n\x12layers/up'
    b'date_normB\x06\x08\x01\x12\x02\x12\x00J6\n2\n\nstagnation\x12${"ver'
    b'sion": 1, "kind": "layer_stat"} \x02\x86`<>e\x00\x00'
    b"\x00\x00\x00\x00\x00\xeb\xd0Zi\t\x00\x00\x00\x00e\xcd\xcdA\x10\x01*X\n\x1a\n\x10layers/grad_no"
    b"rmB\x06\x08\x01\x12\x02\x12\x00\n\x1c\n\x12layers/weight_normB\x06\x08\x01\x12\x02\x12\x00"
    b"\n\x1c\n\x12layers/update_normB\x06\x08\x01\x12\x02\x12\x00R\x0bP\xe1"
)


class _PointsOnly:
    """The same provider without its column reads (`read_scalar_series`,
    `read_tensor_series`): the reader then takes TensorBoard's points."""

    def __init__(self, provider) -> None:
        self._provider = provider

    def __getattr__(self, name: str):
        if name.endswith("_series"):
            raise AttributeError(name)
        return getattr(self._provider, name)


def _same_run_data(columns: RunData, points: RunData) -> None:
    for name in ("name", "source", "layer_names", "model_card", "preflight", "lr_range"):
        assert getattr(columns, name) == getattr(points, name), name
    assert columns.notes == points.notes and columns.error == points.error
    assert columns.weight_histograms == points.weight_histograms
    np.testing.assert_array_equal(columns.epochs, points.epochs)
    for name in ("scalars", "scalar_present", "layer_stats"):
        mine, theirs = getattr(columns, name), getattr(points, name)
        assert sorted(mine) == sorted(theirs), name
        for tag in mine:
            np.testing.assert_array_equal(mine[tag], theirs[tag], err_msg=f"{name} {tag}")
    if points.class_counts is None:
        assert columns.class_counts is None
    else:
        np.testing.assert_array_equal(columns.class_counts, points.class_counts)


@pytest.mark.skipif(not HAS_DATA_SERVER, reason="tensorboard-data-server is not installed")
@settings(max_examples=30, **FUZZ_SETTINGS)
@given(LOGDIRS)
# Found by this test: vectors of one width (read in one piece) whose only
# step is no epoch (one still in flight) must align to nothing, not fail.
@example(files=(("r/stagnation", EPOCHLESS_VECTORS),))
def test_rust_column_reads_answer_what_its_point_reads_answer(files):
    """The CLI's provider reads a tag's points into arrays, a tag of vectors of
    one width in one piece (reader/grpc_series.py). Whatever the files hold,
    every run must come out as it does from TensorBoard's point-by-point
    answer on the same server."""
    with tempfile.TemporaryDirectory(prefix="tb_stagnation_fuzz_") as root:
        _write_logdir(root, files)
        with open_logdir(root, use_data_server=True) as source:
            provider = source._reader._provider
            assert hasattr(provider, "read_tensor_series")  # what this test is about
            listings = list(source.listings().values())
            columns = source._reader.read_runs(listings)
            points = ProviderReader(_PointsOnly(provider)).read_runs(listings)
    assert len(columns) == len(points)
    for mine, theirs in zip(columns, points):
        _same_run_data(mine, theirs)


@settings(max_examples=60, **FUZZ_SETTINGS)
@given(LOGDIRS)
def test_routes_answer_anything_with_json(files):
    """The same logdirs served by TensorBoard's WSGI app: every route of every
    run answers 200 with strict JSON, `/series` aligned on its epochs."""
    with tempfile.TemporaryDirectory(prefix="tb_stagnation_fuzz_") as root:
        _write_logdir(root, files)
        served = ServedPlugin(root)
        rows = _strict_json(served.get("/runs").data)["runs"]
        for row in rows:
            assert row["status"] != "error", row
            query = "?run=" + urllib.parse.quote(row["run"], safe="")
            responses = {route: served.get(route + query) for route in ("/report", "/series")}
            for route, response in responses.items():
                assert response.status_code == 200, (route, response.data[:300])
            report = _strict_json(responses["/report"].data)
            check_schema(report)
            assert report["epochs"] == row["epochs"] or row["epochs"] >= report["epochs"]
            _check_series(_strict_json(responses["/series"].data), report)
