"""The plugin's routes inside TensorBoard's WSGI app, on logdirs users make."""

import gzip
import io
import json
import time
import urllib.parse

import pytest
from plugin_support import (
    HOSTILE_NAMES,
    ServedPlugin,
    plugin_analyze,
    train_keras_run,
    write_callback_run,
)
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

from tb_stagnation.plugin import analyses, jsonable
from tb_stagnation.reader.provider_reader import ProviderReader
from tb_stagnation.summary import tags
from tb_stagnation.summary.writer import SummaryWriter

# Linux allows 255 bytes per path component and 4096 per path: the longest
# run name is nested folders of ~3 kB; the 10 kB name is a layer's.
LONG_RUN = "/".join(["x" * 200] * 15)
LONG_LAYER = "L" * 10_000


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logdir")
    write_callback_run(str(root / "healthy"))
    write_callback_run(str(root / "healthy" / "child"), epochs=2)  # nested logical run
    write_callback_run(str(root / "stalls"), epochs=12, stall_from=3)  # > 10: all kept
    write_callback_run(str(root / "nan_loss"), nan_from=4)
    for index, name in enumerate(HOSTILE_NAMES):
        write_callback_run(str(root / "hostile" / name), layers=(name, f"dense_{index}"))
    write_callback_run(str(root / LONG_RUN), layers=(LONG_LAYER,))
    train_keras_run(str(root / "plain_keras"))
    return str(root)


@pytest.fixture(scope="module")
def served(logdir):
    return ServedPlugin(logdir)


def quoted(run: str) -> str:
    return urllib.parse.quote(run, safe="")


def expected_report(served, run: str) -> dict:
    """What the analysis says about the same data, read the same way."""
    reader = ProviderReader(served.plugin._data_provider)
    report = plugin_analyze()(reader.read_run(run))
    return json.loads(jsonable.dumps(jsonable.to_jsonable(report)))


def test_tab_is_listed_enabled_with_our_data(served):
    listing = served.client.get("/data/plugins_listing").get_json()
    entry = listing["stagnation"]
    assert entry["enabled"] is True and entry["tab_name"] == "Stagnation"
    assert entry["loading_mechanism"] == {
        "type": "IFRAME",
        "module_path": "/data/plugin/stagnation/index.js",
    }


def test_runs_lists_every_run_with_status(served):
    body = served.get_json("/runs")
    rows = {row["run"]: row for row in body["runs"]}
    expected = {"healthy", "healthy/child", "stalls", "nan_loss", "plain_keras", LONG_RUN}
    expected |= {f"hostile/{name}" for name in HOSTILE_NAMES}
    assert set(rows) == expected
    assert rows["plain_keras"]["source"] == "keras" and rows["plain_keras"]["epochs"] == 3
    assert rows["stalls"]["source"] == "callback" and rows["stalls"]["epochs"] == 12
    for row in rows.values():
        assert row["status"] in {"healthy", "stalled", "findings", "empty"}
        assert set(row) >= {
            "run",
            "source",
            "epochs",
            "status",
            "healthy",
            "stalled_epochs",
            "top_finding",
            "updated",
        }
    assert isinstance(body["updated"], float)


@pytest.mark.parametrize("run", ["healthy", "healthy/child", "stalls", "nan_loss", "plain_keras"])
def test_report_is_the_analysis_of_the_run(served, run):
    assert served.get_json(f"/report?run={quoted(run)}") == expected_report(served, run)


def test_series_of_a_callback_run(served):
    series = served.get_json("/series?run=nan_loss")
    assert series["run"] == "nan_loss" and series["source"] == "callback"
    assert series["epochs"] == [0, 1, 2, 3, 4, 5]
    assert series["metrics"]["loss"][4:] == ["NaN", "NaN"]  # evidence, not a gap
    assert series["predictions"]["changed_share"][0] is None
    assert series["layers"]["names"] == ["dense", "dense_1"]
    assert series["layers"]["dead_fraction"][1] == [None] * 6  # softmax: does not apply
    assert series["stalled_epochs"] == expected_report(served, "nan_loss")["stalled_epochs"]


def test_series_of_a_plain_keras_run(served):
    series = served.get_json("/series?run=plain_keras")
    assert series["source"] == "keras" and series["epochs"] == [0, 1, 2]
    assert set(series["metrics"]) == {"loss", "val_loss", "accuracy", "val_accuracy"}
    assert len(series["learning_rate"]) == 3
    for group in ("global", "layers", "predictions", "inputs", "batches"):
        assert series[group] is None


def test_series_is_the_same_json_gzipped_or_not(served):
    # The answer is cached gzipped: a client that does not accept gzip gets it unzipped.
    plain = served.get("/series?run=stalls")
    zipped = served.get("/series?run=stalls", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(plain.headers["Content-Length"]) == len(plain.data)
    assert int(zipped.headers["Content-Length"]) == len(zipped.data)
    assert gzip.decompress(zipped.data) == plain.data
    assert json.loads(plain.data)["epochs"] == list(range(12))
    head = served.client.head("/data/plugin/stagnation/series?run=stalls")
    assert head.status_code == 200 and head.data == b""


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_come_back_as_data(served, name):
    run = f"hostile/{name}"
    response = served.get(f"/series?run={quoted(run)}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"<" not in response.data and b">" not in response.data  # \u003c escaped
    series = json.loads(response.data)
    assert series["run"] == run and series["layers"]["names"][0] == name
    assert served.get_json(f"/report?run={quoted(run)}")["run"] == run


def test_long_names_round_trip(served):
    assert LONG_RUN in {row["run"] for row in served.get_json("/runs")["runs"]}
    series = served.get_json(f"/series?run={quoted(LONG_RUN)}")
    assert series["run"] == LONG_RUN and series["layers"]["names"] == [LONG_LAYER]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?run=", 400),
        ("?other=1", 400),
        ("?run=healthy&run=stalls", 400),
        ("?run=%ff%fe", 400),  # not UTF-8
        ("?run=healthy&&x", 400),
        ("?run=" + "a" * 20_000, 400),
        ("?run=" + "%41" * 30_000, 400),
        ("?run=nope", 404),
        ("?run=..%2F..%2Fetc%2Fpasswd", 404),
        ("?run=healthy%00", 404),
    ],
)
@pytest.mark.parametrize("route", ["/report", "/series"])
def test_bad_parameters_get_json_errors(served, route, query, status):
    body = served.get_json(route + query, status=status)
    assert set(body) == {"error"} and body["error"]
    assert "Traceback" not in body["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("route", ["/runs", "/report?run=healthy", "/index.js", "/static/x.css"])
def test_other_methods_are_refused(served, method, route):
    response = served.client.open("/data/plugin/stagnation" + route, method=method)
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.headers["Content-Type"] == "application/json" and "error" in response.get_json()


def test_head_is_get_without_a_body(served):
    response = served.client.head("/data/plugin/stagnation/runs")
    assert response.status_code == 200 and response.data == b""


def test_frontend_bundle_is_served_as_javascript(served):
    for route in ("/index.js", "/static/index.js"):
        response = served.get(route)
        assert response.status_code == 200, route
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert b"render" in response.data


@pytest.mark.parametrize(
    "path",
    [
        "/static/../loader.py",
        "/static/..%2Floader.py",
        "/static/%2e%2e%2fplugin%2floader.py",
        "/static/%252e%252e%252fsetup.py",
        "/static/..%5c..%5csetup.py",
        "/static//etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/static/.hidden.js",
        "/static/index.js%00.png",
        "/static/sub/index.js",
        "/static/__init__.py",
        "/static/missing.js",
    ],
)
def test_static_paths_cannot_leave_the_static_folder(served, path):
    response = served.get(path)
    assert response.status_code == 404, path
    assert response.headers["Content-Type"] == "application/json"


def test_unexpected_errors_are_one_json_line(served, monkeypatch, caplog):
    def explode(*args):
        raise RuntimeError("secret detail /home/user")

    monkeypatch.setattr(served.plugin._analyses, "runs", explode)
    for _ in range(2):
        body = served.get_json("/runs", status=500)
    assert "secret" not in body["error"] and "Traceback" not in body["error"]
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1  # logged once


def test_path_prefix_and_experiment_paths(logdir):
    prefixed = ServedPlugin(logdir, path_prefix="/foo")
    assert {row["run"] for row in prefixed.get_json("/runs")["runs"]} >= {"healthy"}
    assert prefixed.get("/index.js").status_code == 200
    response = prefixed.client.get("/foo/experiment/123/data/plugin/stagnation/report?run=healthy")
    assert response.status_code == 200 and response.get_json()["run"] == "healthy"


def test_empty_logdir_still_serves_the_tab(tmp_path):
    served = ServedPlugin(str(tmp_path))
    assert served.get_json("/runs")["runs"] == []
    assert served.get("/index.js").status_code == 200
    assert served.client.get("/data/plugins_listing").get_json()["stagnation"]["enabled"] is False
    assert served.get_json("/report?run=anything", status=404)["error"]


def test_plain_keras_logdir_enables_the_tab(tmp_path):
    train_keras_run(str(tmp_path / "k"), epochs=2)
    served = ServedPlugin(str(tmp_path))
    assert served.client.get("/data/plugins_listing").get_json()["stagnation"]["enabled"] is True
    assert [row["run"] for row in served.get_json("/runs")["runs"]] == ["k"]


def test_a_run_written_while_served(tmp_path):
    run_dir = tmp_path / "live" / tags.RUN_SUBDIR
    writer = SummaryWriter(str(run_dir))
    writer.write_model_card(0, {"layers": [{"name": "dense"}]})

    def write_epochs(epochs):
        for epoch in epochs:
            writer.write_step(
                epoch,
                scalars={tags.logs_tag("loss"): 1.0 / (epoch + 1)},
                layer_stats={tags.LAYER_GRAD_NORM: [0.5]},
            )
        writer.flush()

    write_epochs(range(3))
    served = ServedPlugin(str(tmp_path))
    assert served.get_json("/series?run=live")["epochs"] == [0, 1, 2]
    assert served.get_json("/runs")["runs"][0]["epochs"] == 3

    write_epochs(range(3, 5))
    served.reload(str(tmp_path))
    # Within LISTING_REUSE_SECONDS of a /runs, /series may answer from its
    # listing (the tab asks for the three together); past it, the new epochs.
    time.sleep(analyses.LISTING_REUSE_SECONDS + 0.1)
    assert served.get_json("/series?run=live")["epochs"] == [0, 1, 2, 3, 4]
    assert served.get_json("/report?run=live")["epochs"] == 5
    assert served.get_json("/runs")["runs"][0]["epochs"] == 5

    # A record cut in the middle, as a killed or still-writing process leaves it.
    event_file = next(path for path in run_dir.iterdir() if "tfevents" in path.name)
    with open(event_file, "ab") as handle:
        handle.write(_event_record(5)[:-7])
    served.reload(str(tmp_path))
    for route in ("/runs", "/report?run=live", "/series?run=live"):
        served.get_json(route)
    assert served.get_json("/series?run=live")["epochs"] == [0, 1, 2, 3, 4]
    writer.close()


def _event_record(step: int) -> bytes:
    """One complete event record, framed as in an event file."""
    value = summary_pb2.Summary.Value(
        tag=tags.logs_tag("loss"), tensor=tensor_util.make_tensor_proto(0.1)
    )
    event = event_pb2.Event(step=step, wall_time=1.0, summary=summary_pb2.Summary(value=[value]))
    buffer = io.BytesIO()
    RecordWriter(buffer).write(event.SerializeToString())
    return buffer.getvalue()
