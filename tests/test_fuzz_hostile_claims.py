"""Fuzz: event files whose shapes and lengths claim far more than they hold.

For every tag the format defines (summary/tags.py: each scalar, each
`layers/*` vector, the class counts, the model card, the pre-flight record,
the `batch/*` tags, and Keras's `epoch_*` scalars beside them), runs whose
tensors claim 2^28, 10^12, 2^62 or a negative number of elements, with one
value, none, or a few packed bytes, in every dtype a reader may meet; runs
of many tensors each just under the per-tensor bound (the budget of one
read, the cells of one matrix); and TFRecord headers claiming a terabyte.

The installed CLI (its default loader, TensorBoard's Rust data server),
`analyze()` and the Python loader, and every plugin route (the werkzeug
client on TensorBoard's WSGI app, and a real `tensorboard --load_fast=true`)
must answer within bounded memory, and still report the healthy runs beside
them. Peak RSS is printed (pytest -s).
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from hostile_events import (
    PEAK_RSS_LIMIT,
    ROUTES_SCRIPT,
    SCALAR_TAGS,
    STRING_TAGS,
    VECTOR_TAGS,
    claiming_tensor,
    cli_child,
    hostile_event_file,
    length_claim_record,
    python_child,
    record,
    write_file,
)
from plugin_support import write_callback_run
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.util import tensor_util

from tb_stagnation.reader import decode_bounds
from tb_stagnation.reader.logdir import _data_server_binary
from tb_stagnation.summary import metadata, tags

ALL_TAGS = [*SCALAR_TAGS, *VECTOR_TAGS, *STRING_TAGS]
HUGE = [2**28, 10**12, -(2**40)]

# (name, dims, dtype, fill): every run holds every tag with that claim.
CLAIMS = [
    *((f"one_float_{i}", [size], types_pb2.DT_FLOAT, "one") for i, size in enumerate(HUGE)),
    ("product_2e62", [2**31, 2**31], types_pb2.DT_FLOAT, "one"),
    ("rank_64", [2] * 64, types_pb2.DT_FLOAT, "one"),
    ("no_value", [2**28], types_pb2.DT_FLOAT, "none"),
    ("short_content", [10**12], types_pb2.DT_FLOAT, "content"),
    ("one_string", [2**28], types_pb2.DT_STRING, "one"),
    ("one_double", [10**12], types_pb2.DT_DOUBLE, "one"),
    ("one_int64", [2**28], types_pb2.DT_INT64, "one"),
]
HEALTHY = ("healthy", "healthy_too")


def _keras_claim_file(dims) -> bytes:
    """Keras's `epoch_*` scalars (tags.KERAS_*) with a hostile shape."""
    records = []
    for epoch in range(3):
        values = []
        for tag in ("epoch_loss", tags.KERAS_LEARNING_RATE, "epoch_accuracy"):
            value = summary_pb2.Summary.Value(tag=tag, tensor=claiming_tensor(dims))
            if epoch == 0:
                value.metadata.CopyFrom(scalar_metadata.create_summary_metadata("", ""))
            values.append(value)
        event = event_pb2.Event(step=epoch, wall_time=1.7e9 + epoch)
        event.summary.CopyFrom(summary_pb2.Summary(value=values))
        records.append(record(event))
    return b"".join(records)


def _keras_graph_claim_file() -> bytes:
    """Keras's run with a sane `epoch_loss` and the model config it logs
    (plugin `graph_keras_model`, a blob sequence) claiming 10^12 blobs."""
    records = []
    for epoch in range(3):
        loss = summary_pb2.Summary.Value(tag="epoch_loss", tensor=claiming_tensor([]))
        values = [loss]
        if epoch == 0:
            loss.metadata.CopyFrom(scalar_metadata.create_summary_metadata("", ""))
            graph = summary_pb2.Summary.Value(
                tag="keras", tensor=claiming_tensor([10**12], types_pb2.DT_STRING)
            )
            graph.metadata.plugin_data.plugin_name = "graph_keras_model"
            graph.metadata.data_class = summary_pb2.DATA_CLASS_BLOB_SEQUENCE
            values.append(graph)
        event = event_pb2.Event(step=epoch, wall_time=1.7e9 + epoch)
        event.summary.CopyFrom(summary_pb2.Summary(value=values))
        records.append(record(event))
    return b"".join(records)


def _near_bound_file(epochs: int, wide_epochs: int) -> bytes:
    """Vectors each just under the per-tensor bound: `wide_epochs` of them
    per tag, then narrow ones, so that the read budget and the matrix bound
    (not the per-tensor one) are what must hold."""
    wide = decode_bounds.MAX_TENSOR_ELEMENTS - 1
    records = []
    for epoch in range(epochs):
        values = []
        size = wide if epoch < wide_epochs else 1
        for tag in (tags.logs_tag("loss"), *tags.LAYER_STATS[:2]):
            tensor = claiming_tensor([] if tag.startswith("logs/") else [size])
            value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
            if epoch == 0:
                kind = metadata.KIND_SCALAR if tag.startswith("logs/") else metadata.KIND_LAYER_STAT
                value.metadata.CopyFrom(metadata.create_summary_metadata(kind))
            values.append(value)
        event = event_pb2.Event(step=epoch, wall_time=1.7e9 + epoch)
        event.summary.CopyFrom(summary_pb2.Summary(value=values))
        records.append(record(event))
    return b"".join(records)


@pytest.fixture(scope="module")
def hostile_logdir(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("hostile"))
    for name in HEALTHY:
        write_callback_run(os.path.join(root, name))
    for name, dims, dtype, fill in CLAIMS:
        claims = [(tag, claiming_tensor(dims, dtype, fill)) for tag in ALL_TAGS]
        data = hostile_event_file(claims, with_loss=False)
        write_file(os.path.join(root, name, tags.RUN_SUBDIR), data)
    for i, size in enumerate(HUGE):
        write_file(
            os.path.join(root, f"keras_{i}", tags.KERAS_TRAIN_SUBDIR), _keras_claim_file([size])
        )
    write_file(
        os.path.join(root, "keras_graph", tags.KERAS_TRAIN_SUBDIR), _keras_graph_claim_file()
    )
    # 40 epochs of vectors just under the bound: 40M entries per tag, over one read's budget.
    write_file(os.path.join(root, "near_bound", tags.RUN_SUBDIR), _near_bound_file(40, 40))
    # 2 wide epochs beside 200 narrow ones: a 202 x 1M matrix, over the cell bound.
    write_file(os.path.join(root, "wide_matrix", tags.RUN_SUBDIR), _near_bound_file(202, 2))
    return root


@pytest.fixture(scope="module")
def length_claim_logdir(hostile_logdir, tmp_path_factory) -> str:
    """The same, and record headers claiming a terabyte: a file whose first
    record does (beside a healthy file of the same run), a file of only that.

    TensorBoard's own loaders cannot take these: its Rust data server aborts
    ("memory allocation of 1099511627780 bytes failed") and TensorFlow's
    record reader crashes the process, so a `tensorboard` serving this logdir
    dies before the plugin is asked anything. The CLI and `analyze()` open
    the logdir themselves, and must survive it.
    """
    root = str(tmp_path_factory.mktemp("lengths") / "logs")
    shutil.copytree(hostile_logdir, root, symlinks=True)
    folder = os.path.join(root, "length_claim", tags.RUN_SUBDIR)
    write_callback_run(os.path.join(root, "length_claim"))
    write_file(folder, length_claim_record(1 << 40), index=9)
    write_file(os.path.join(root, "length_only", tags.RUN_SUBDIR), length_claim_record(1 << 62))
    return root


def _hostile_runs() -> set[str]:
    return {
        *(name for name, *_ in CLAIMS),
        *(f"keras_{i}" for i in range(len(HUGE))),
        "near_bound",
        "wide_matrix",
        "keras_graph",
    }


def _check_reports(reports: list[dict], where: str) -> None:
    runs = {report["run"]: report for report in reports}
    for name in HEALTHY:
        assert runs[name]["healthy"] is True and runs[name]["epochs"] == 6, (where, runs[name])
    assert _hostile_runs() <= set(runs), (where, sorted(runs))
    # The run whose other file claims a terabyte still has its epochs.
    assert runs["length_claim"]["epochs"] == 6, where
    for name in _hostile_runs() & set(runs):
        report = runs[name]
        assert report.get("error") or report["notes"], (where, name)
        # No claim's worth of epochs or layers was believed.
        assert report["epochs"] <= 202, (where, name)
    graph_notes = runs["keras_graph"]["notes"]
    assert runs["keras_graph"]["epochs"] == 3, where
    assert any("model config" in note and "unreadable" in note for note in graph_notes), where


@pytest.mark.parametrize("logdir", ["hostile_logdir", "length_claim_logdir"])
def test_cli_reports_the_healthy_runs_within_bounded_memory(request, logdir):
    """Over the claims alone the data server loads everything (the CLI's own
    gRPC decoding is what must hold); with the length claims it aborts."""
    result = cli_child("report", request.getfixturevalue(logdir), "--json")
    print(f"\ntb-stagnation report ({logdir}): peak RSS {result.peak_rss / 2**20:.0f} MiB")
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.peak_rss < PEAK_RSS_LIMIT
    reports = json.loads(result.stdout)["runs"]
    if logdir == "length_claim_logdir":
        _check_reports(reports, "cli")
        # The data server's abort is a warning; the Python loader read the logdir.
        assert "data server crashed" in result.stderr and "memory allocation" in result.stderr
    else:
        runs = {report["run"]: report for report in reports}
        assert all(runs[name]["healthy"] for name in HEALTHY)
        assert _DATA_SERVER_LISTS <= set(runs) and "crashed" not in result.stderr


ANALYZE = textwrap.dedent(
    """
    import json, resource, sys
    from tb_stagnation import analyze
    from tb_stagnation.analysis.api import run_report
    from tb_stagnation.reader.logdir import open_logdir
    out = {"analyze": analyze(sys.argv[1])["runs"]}
    with open_logdir(sys.argv[1], use_data_server=False) as source:
        out["python loader"] = [run_report(r) for r in source.iter_runs(source.list_runs())]
    print(json.dumps(out, default=str))
    """
)


def test_analyze_and_the_python_loader_within_bounded_memory(length_claim_logdir):
    result = python_child(ANALYZE, length_claim_logdir)
    print(f"\nanalyze() + Python loader: peak RSS {result.peak_rss / 2**20:.0f} MiB")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.peak_rss < PEAK_RSS_LIMIT
    for where, reports in json.loads(result.stdout).items():
        _check_reports(reports, where)


def _check_routes(runs: list[dict], answer_of, expected: set[str]) -> None:
    rows = {row["run"]: row for row in runs}
    for name in HEALTHY:
        assert rows[name]["status"] == "healthy", rows[name]
    assert expected <= set(rows), sorted(rows)
    for name, row in rows.items():
        for route in ("/report", "/series"):
            code, content_type, body = answer_of(route, name)
            assert content_type == "application/json", (route, name)
            # A run whose analysis failed answers /report with its error (http_api.md).
            expected = 500 if row["status"] == "error" and route == "/report" else 200
            assert code == expected, (route, name, body)


def test_plugin_routes_within_bounded_memory(hostile_logdir):
    result = python_child(ROUTES_SCRIPT, hostile_logdir)
    print(f"\nplugin routes (werkzeug, Python loader): peak RSS {result.peak_rss / 2**20:.0f} MiB")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.peak_rss < PEAK_RSS_LIMIT
    answer = json.loads(result.stdout)
    status, body = answer["runs"]
    assert status == 200, body
    _check_routes(
        body["runs"], lambda route, name: answer["routes"][f"{route} {name}"], _hostile_runs()
    )


# The data server drops a "scalar" that is not rank 0: the Keras runs whose
# every epoch_* claims a shape are no runs to it. The others it lists.
_DATA_SERVER_LISTS = {name for name, *_ in CLAIMS} | {"near_bound", "wide_matrix", "keras_graph"}


def _peak_rss_of_tree(pid: int) -> int:
    """VmHWM (peak RSS) of `pid` and of its children, from /proc, in bytes."""
    peak = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            pids += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    for each in pids:
        try:
            with open(f"/proc/{each}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            continue
    return peak


@pytest.mark.skipif(
    _data_server_binary() is None, reason="tensorboard-data-server is not installed"
)
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from /proc")
def test_real_tensorboard_with_its_data_server_within_bounded_memory(hostile_logdir):
    """`tensorboard --load_fast=true`: the plugin reads through TensorBoard's
    own gRPC provider, whose decoding is the one the bound must reach."""
    import resource

    from tensorboard_process import TensorBoardProcess

    server = TensorBoardProcess(hostile_logdir, load_fast=True)
    try:
        # A regression must fail here, not take the machine's memory.
        resource.prlimit(server.process.pid, resource.RLIMIT_AS, (8 << 30, 8 << 30))
        base = server.url + "data/plugin/stagnation"

        def get(route: str):
            try:
                with urllib.request.urlopen(base + route, timeout=120) as response:
                    return response.status, response.headers["Content-Type"], json.load(response)
            except urllib.error.HTTPError as error:
                return error.code, error.headers["Content-Type"], json.load(error)

        def all_listed() -> bool:
            code, _, body = get("/runs")
            names = {row["run"] for row in body.get("runs", [])} if code == 200 else set()
            return code == 200 and set(HEALTHY) | _DATA_SERVER_LISTS <= names

        server.wait_until(all_listed, "the runs to be listed", timeout=180)
        code, _, body = get("/runs")
        answers = {}
        for row in body["runs"]:
            query = "?run=" + urllib.parse.quote(row["run"], safe="")
            for route in ("/report", "/series"):
                answers[route, row["run"]] = get(route + query)
        peak = _peak_rss_of_tree(server.process.pid)
        print(f"\ntensorboard --load_fast=true (+ data server): peak RSS {peak / 2**20:.0f} MiB")
        assert peak < PEAK_RSS_LIMIT
        _check_routes(body["runs"], lambda route, name: answers[route, name], _DATA_SERVER_LISTS)
    finally:
        server.stop()


def _proto(dtype, dims, **fields):
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims)
    return proto


DECODE_CASES = {
    "float scalar": tensor_util.make_tensor_proto(np.float32(0.1)),
    "packed vector": tensor_util.make_tensor_proto(np.arange(30, dtype=np.float32) / 7),
    "packed matrix": tensor_util.make_tensor_proto(np.ones((3, 4), np.float32)),
    "packed, unknown dim": _proto(types_pb2.DT_FLOAT, [-1], tensor_content=b"\0" * 12),
    "packed, shape disagrees": _proto(types_pb2.DT_FLOAT, [5], tensor_content=b"\0" * 12),
    "packed, torn float": _proto(types_pb2.DT_FLOAT, [1], tensor_content=b"\0" * 6),
    "float_val of a vector": _proto(types_pb2.DT_FLOAT, [3], float_val=[1, 2, 3]),
    "one float_val repeated": _proto(types_pb2.DT_FLOAT, [4], float_val=[2]),
    "scalar with two values": _proto(types_pb2.DT_FLOAT, [], float_val=[1, 2]),
    "NaN scalar": tensor_util.make_tensor_proto(np.float32("nan")),
    "double scalar": tensor_util.make_tensor_proto(np.float64(0.1)),
    "int scalar": tensor_util.make_tensor_proto(np.int32(3)),
    "half scalar": tensor_util.make_tensor_proto(np.float16(0.5)),
    "string": tensor_util.make_tensor_proto(b"{}"),
}


@pytest.mark.parametrize("case", DECODE_CASES)
def test_fast_float32_decoding_answers_what_make_ndarray_answers(case):
    proto = DECODE_CASES[case]
    original = getattr(tensor_util.make_ndarray, "__wrapped__", tensor_util.make_ndarray)
    try:
        expected = original(proto)
    except ValueError:
        # Either fails the same way or leaves the proto to make_ndarray.
        try:
            assert decode_bounds.decode_float32(proto) is None
        except ValueError:
            pass
        return
    with decode_bounds.bounded_decoding():
        got = decode_bounds.decode_float32(proto)
        wrapped = tensor_util.make_ndarray(proto)
    for answer in (wrapped, *([got] if got is not None else [])):
        assert answer.dtype == expected.dtype and answer.shape == expected.shape
        np.testing.assert_array_equal(answer, expected)
        assert answer.flags.writeable
    # The forms our writer and Keras's use take the fast path.
    assert (got is not None) == (
        case
        in {"float scalar", "packed vector", "packed matrix", "packed, unknown dim", "NaN scalar"}
    )


def test_fast_float32_decoding_is_bounded_like_make_ndarray():
    claims_a_terabyte = _proto(types_pb2.DT_FLOAT, [10**12], tensor_content=b"\0" * 4)
    with decode_bounds.bounded_decoding(), pytest.raises(decode_bounds.TooLargeError):
        tensor_util.make_ndarray(claims_a_terabyte)
    with decode_bounds.bounded_decoding(), pytest.raises(decode_bounds.TooLargeError):
        for _ in range(decode_bounds.MAX_READ_ELEMENTS // 2**20 + 1):
            tensor_util.make_ndarray(
                _proto(types_pb2.DT_FLOAT, [2**20], tensor_content=b"\0" * 2**22)
            )
