"""The Rust data server read into arrays (reader/grpc_series.py), in the plugin.

Under `tensorboard --load_fast=true` the plugin remakes TensorBoard's
`GrpcDataProvider` as the reader's `SeriesGrpcProvider` on the same stub. Its
routes must answer exactly what they answer through TensorBoard's own
point-by-point reads on the same server: run list, reports and series, for
callback runs (vectors of one width, widths that change, NaN), Keras-only
runs and runs of another tool. (test_fuzz_reader.py checks the same of the
reader on arbitrary event files.)
"""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest
from plugin_support import PREFIX, train_keras_run, write_callback_run
from tensorboard.backend import application
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.data import grpc_provider
from tensorboard.plugins import base_plugin
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from werkzeug import test as werkzeug_test

from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin
from tb_stagnation.reader.grpc_series import SeriesGrpcProvider
from tb_stagnation.reader.logdir import _data_server_binary, _data_server_provider

pytestmark = pytest.mark.skipif(
    _data_server_binary() is None, reason="tensorboard-data-server is not installed"
)


class _TensorBoardsOwn(grpc_provider.GrpcDataProvider):
    """TensorBoard's provider under another class: the plugin keeps it as it is."""


def _client(provider) -> tuple[StagnationPlugin, werkzeug_test.Client]:
    context = base_plugin.TBContext(data_provider=provider, logdir="")
    plugin = StagnationPlugin(context)
    app = application.TensorBoardWSGI([plugin], data_provider=provider)
    return plugin, werkzeug_test.Client(app)


def _answers(client: werkzeug_test.Client) -> dict:
    def get(route: str):
        response = client.get(PREFIX + route)
        assert response.status_code == 200, (route, response.data[:300])
        return json.loads(response.data)

    runs = get("/runs")
    runs.pop("updated")  # the time of the answer
    answers = {"/runs": runs}
    for row in runs["runs"]:
        query = "?run=" + urllib.parse.quote(row["run"], safe="")
        for route in ("/report", "/series"):
            answers[route + query] = get(route + query)
    return answers


@pytest.fixture
def logdir(tmp_path) -> str:
    root = str(tmp_path)
    write_callback_run(os.path.join(root, "healthy"), epochs=8)
    write_callback_run(os.path.join(root, "stalls"), epochs=12, stall_from=4)
    write_callback_run(os.path.join(root, "nan"), epochs=8, nan_from=5)
    # A second fit on a model of three layers: the layer vectors change width.
    write_callback_run(os.path.join(root, "refit"), epochs=4)
    write_callback_run(
        os.path.join(root, "refit"), epochs=4, start=4, layers=("dense", "dense_1", "dense_2")
    )
    train_keras_run(os.path.join(root, "keras_only"), epochs=4)
    _other_tool_run(os.path.join(root, "other_tool"))
    return root


def _other_tool_run(folder: str) -> None:
    """A loss logged by another tool, as a TensorBoard simple value."""
    writer = EventFileWriter(folder)
    for step in range(10):
        value = summary_pb2.Summary.Value(tag="train/loss", simple_value=1.0 / (step + 1))
        summary = summary_pb2.Summary(value=[value])
        writer.add_event(event_pb2.Event(step=step, wall_time=1.7e9 + step, summary=summary))
    writer.close()


def test_routes_answer_the_same_through_the_column_reads(logdir):
    with _data_server_provider(_data_server_binary(), logdir) as served:
        address, stub = served._addr, served._series_stub
        columns_plugin, columns = _client(grpc_provider.GrpcDataProvider(address, stub))
        points_plugin, points = _client(_TensorBoardsOwn(address, stub))
        # What this test compares: one plugin reads into arrays, the other not.
        assert type(columns_plugin._data_provider) is SeriesGrpcProvider
        assert type(points_plugin._data_provider) is _TensorBoardsOwn
        answers = _answers(columns)
        assert answers == _answers(points)
    rows = {row["run"]: row for row in answers["/runs"]["runs"]}
    assert set(rows) == {"healthy", "stalls", "nan", "refit", "keras_only", "other_tool"}
    assert rows["stalls"]["status"] == "stalled" and rows["healthy"]["status"] == "healthy"
