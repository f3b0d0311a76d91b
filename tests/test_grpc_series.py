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

import concurrent.futures
import json
import os
import urllib.parse

import grpc
import pytest
from plugin_support import PREFIX, tensorboard_flags, train_keras_run, write_callback_run
from tensorboard.backend import application
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.data import grpc_provider
from tensorboard.data.proto import data_provider_pb2
from tensorboard.plugins import base_plugin
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from werkzeug import test as werkzeug_test

from tb_stagnation.compat import tensorboard as compat_tensorboard
from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin
from tb_stagnation.reader.grpc_lanes import OWN_CONNECTION, StubLanes
from tb_stagnation.reader.grpc_series import SeriesGrpcProvider
from tb_stagnation.reader.logdir import _data_server_binary, _data_server_provider

pytestmark = pytest.mark.skipif(
    _data_server_binary() is None, reason="tensorboard-data-server is not installed"
)


class _TensorBoardsOwn(grpc_provider.GrpcDataProvider):
    """TensorBoard's provider under another class: the plugin keeps it as it is."""


def _client(provider) -> tuple[StagnationPlugin, werkzeug_test.Client]:
    context = base_plugin.TBContext(data_provider=provider, logdir="", flags=tensorboard_flags())
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


def _tensorboards_stub(address: str):
    """A stub on one channel of its own, as TensorBoard makes it."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 1 << 28)])
    return channel, grpc_provider.make_stub(channel)


def test_routes_answer_the_same_through_the_column_reads(logdir):
    with _data_server_provider(_data_server_binary(), logdir) as served:
        address = served._addr
        channel, stub = _tensorboards_stub(address)
        columns_plugin, columns = _client(grpc_provider.GrpcDataProvider(address, stub))
        points_plugin, points = _client(_TensorBoardsOwn(address, stub))
        # What this test compares: one plugin reads into arrays, the other not.
        assert type(columns_plugin._data_provider) is SeriesGrpcProvider
        assert type(points_plugin._data_provider) is _TensorBoardsOwn
        answers = _answers(columns)
        assert answers == _answers(points)
        channel.close()
    rows = {row["run"]: row for row in answers["/runs"]["runs"]}
    assert set(rows) == {"healthy", "stalls", "nan", "refit", "keras_only", "other_tool"}
    assert rows["stalls"]["status"] == "stalled" and rows["healthy"]["status"] == "healthy"


def _established_connections_to(port: int) -> int:
    """This process's open TCP connections to `port` on this machine (Linux)."""
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                _, _local, remote, state, *_ = line.split()
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


@pytest.mark.parametrize("max_lanes", [8, 3])
def test_calls_made_at_once_travel_over_connections_of_their_own(logdir, max_lanes):
    """On one connection, the data server's answers wait ~40 ms for each other
    (grpc_lanes.py). Calls made at once must each get a connection, up to
    the bound, and answer what one connection answers."""
    with _data_server_provider(_data_server_binary(), logdir) as served:
        address = served._addr
        port = int(address.rsplit(":", 1)[1])
        before = _established_connections_to(port)
        channel, stub = _tensorboards_stub(address)

        def open_channel(*options):
            return grpc.insecure_channel(address, options=list(options))

        lanes = StubLanes(stub, open_channel, max_lanes=max_lanes)
        request = data_provider_pb2.ListScalarsRequest()
        request.plugin_filter.plugin_name = "stagnation"

        def listing():
            return lanes.ListScalars(request)

        alone = listing()
        assert lanes.lane_count == 1
        # Eight threads, each making its calls one after the other: with calls
        # of ~1 ms that release the GIL while they wait, they overlap.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: listing(), range(200)))
        assert all(answer == alone for answer in answers)
        assert 1 < lanes.lane_count <= max_lanes
        assert _established_connections_to(port) - before == lanes.lane_count
        lanes.close()
        assert lanes.lane_count == 1
        assert listing() == alone  # the given stub still answers
        channel.close()


def test_the_plugin_opens_its_connections_as_tensorboard_does(logdir):
    """With `tensorboard`'s flags (local credentials by default) the plugin's
    extra connections reach the data server TensorBoard started."""
    with _data_server_provider(_data_server_binary(), logdir) as served:
        opener = compat_tensorboard.data_server_channel_opener(tensorboard_flags(), served._addr)
        assert opener is not None
        channel = opener(OWN_CONNECTION)
        try:
            runs = grpc_provider.make_stub(channel).ListRuns(data_provider_pb2.ListRunsRequest())
        finally:
            channel.close()
    assert {run.name for run in runs.runs} >= {"healthy/stagnation", "keras_only/train"}


def test_a_connection_that_cannot_be_opened_leaves_the_calls_on_the_first(logdir):
    with _data_server_provider(_data_server_binary(), logdir) as served:
        channel, stub = _tensorboards_stub(served._addr)
        attempts = []

        def refuse(*options):
            attempts.append(options)
            raise ValueError("no more channels here")

        lanes = StubLanes(stub, refuse)
        request = data_provider_pb2.ListRunsRequest()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: lanes.ListRuns(request), range(200)))
        channel.close()
    assert all(answer == answers[0] for answer in answers) and answers[0].runs
    assert lanes.lane_count == 1
    assert 1 <= len(attempts) <= 8  # calls overlapped; then it was not tried again
