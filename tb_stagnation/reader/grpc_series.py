"""TensorBoard's gRPC data provider, reading our points straight into arrays.

The CLI reads a logdir through TensorBoard's Rust data server (`logdir.py`),
and so does the plugin under `tensorboard --load_fast=true`, through this
subclass made on TensorBoard's own stub (plugin/stagnation_plugin.py).
TensorBoard's `GrpcDataProvider` builds a Python object per point and decodes
each tensor on its own, ~9 us a tensor even with `decode_float32`; a report on
100 runs x 300 epochs handles 570,000 scalars and 240,000 vectors. This
provider adds `read_scalar_series` and `read_tensor_series`, which the reader
uses when a provider has them (`point_series.py`): a tag's steps and values
become arrays in one call, and a tag whose tensors are all float32 vectors of
one width, as the callback writes them, is decoded in one `np.frombuffer`.
Any other tensor is decoded one by one, as before, under the same bounds.
Its calls go through `grpc_lanes.StubLanes`: made at once, they do not share
a connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np
from tensorboard import errors as tb_errors
from tensorboard.compat.proto import types_pb2
from tensorboard.data import grpc_provider, provider
from tensorboard.data.proto import data_provider_pb2
from tensorboard.util import tensor_util

from tb_stagnation.reader import decode_bounds
from tb_stagnation.reader.grpc_lanes import OpenChannel, StubLanes
from tb_stagnation.reader.point_series import ScalarSeries, TensorSeries

_DT_FLOAT = types_pb2.DT_FLOAT
_FLOAT32_BYTES = 4
# The data server's read methods and their requests.
_REQUESTS = {
    "ReadScalars": data_provider_pb2.ReadScalarsRequest,
    "ReadTensors": data_provider_pb2.ReadTensorsRequest,
}


def to_numpy(tensor_proto: Any) -> np.ndarray:
    """TensorBoard's `make_ndarray`, with the fast path for float32 (~1 us
    against ~15)."""
    decoded = decode_bounds.decode_float32(tensor_proto)
    return decoded if decoded is not None else tensor_util.make_ndarray(tensor_proto)


class SeriesGrpcProvider(grpc_provider.GrpcDataProvider):
    """TensorBoard's gRPC data provider, plus reads into point series."""

    def __init__(self, addr: str, stub: Any, open_channel: OpenChannel | None = None) -> None:
        """`open_channel`: see `StubLanes`; with it, calls made at once do not
        share a connection."""
        lanes = StubLanes(stub, open_channel)
        super().__init__(addr, lanes)
        self._series_stub = lanes  # ours: the base class's attribute is its own

    def close(self) -> None:
        """Closes the channels it opened; `stub`'s stays open."""
        self._series_stub.close()

    def read_tensors(
        self, ctx=None, *, experiment_id, plugin_name, downsample=None, run_tag_filter=None
    ):
        return self._read(
            "ReadTensors",
            _tensor_points,
            experiment_id,
            plugin_name,
            downsample,
            run_tag_filter,
        )

    def read_scalar_series(
        self, ctx=None, *, experiment_id, plugin_name, downsample=None, run_tag_filter=None
    ) -> dict[str, dict[str, ScalarSeries]]:
        """`read_scalars`, each tag's points as a ScalarSeries."""
        return self._read(
            "ReadScalars",
            _scalar_series,
            experiment_id,
            plugin_name,
            downsample,
            run_tag_filter,
        )

    def read_tensor_series(
        self, ctx=None, *, experiment_id, plugin_name, downsample=None, run_tag_filter=None
    ) -> dict[str, dict[str, TensorSeries]]:
        """`read_tensors`, each tag's points as a TensorSeries."""
        return self._read(
            "ReadTensors",
            _tensor_series,
            experiment_id,
            plugin_name,
            downsample,
            run_tag_filter,
        )

    def _read(
        self,
        method: str,
        of_tag: Callable[[Any], Any],
        experiment_id: str,
        plugin_name: str,
        downsample,
        run_tag_filter,
    ) -> dict[str, dict[str, Any]]:
        """Run -> tag -> `of_tag(points of the tag)`, from one `method` call."""
        request = _REQUESTS[method](experiment_id=experiment_id)
        request.plugin_filter.plugin_name = plugin_name
        request.downsample.num_points = downsample
        if run_tag_filter is not None:
            if run_tag_filter.runs is not None:
                request.run_tag_filter.runs.names.extend(sorted(run_tag_filter.runs))
            if run_tag_filter.tags is not None:
                request.run_tag_filter.tags.names.extend(sorted(run_tag_filter.tags))
        with _tensorboard_errors():
            response = getattr(self._series_stub, method)(request)
        return {
            run_entry.run_name: {
                tag_entry.tag_name: of_tag(tag_entry.data) for tag_entry in run_entry.tags
            }
            for run_entry in response.runs
        }


def _tensor_points(data: Any) -> list[provider.TensorDatum]:
    return [
        provider.TensorDatum(step=step, wall_time=wall_time, numpy=to_numpy(value))
        for step, wall_time, value in zip(data.step, data.wall_time, data.value)
    ]


def _scalar_series(data: Any) -> ScalarSeries:
    steps = np.array(data.step, dtype=np.int64)
    values = np.array(data.value, dtype=np.float64)
    return ScalarSeries(steps, values, np.ones(len(steps), dtype=bool))


def _tensor_series(data: Any) -> TensorSeries:
    matrix = _float32_vectors(data.value)
    return TensorSeries(
        np.array(data.step, dtype=np.int64),
        np.array(data.wall_time, dtype=np.float64),
        matrix if matrix is not None else [to_numpy(value) for value in data.value],
    )


@contextmanager
def _tensorboard_errors() -> Iterator[None]:
    """gRPC errors as TensorBoard's own provider raises them: an unknown
    experiment, say, is a NotFoundError that TensorBoard shows the user."""
    try:
        yield
    except grpc.RpcError as error:
        code = error.code() if callable(getattr(error, "code", None)) else None
        details = error.details() if callable(getattr(error, "details", None)) else str(error)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise tb_errors.InvalidArgumentError(details) from error
        if code == grpc.StatusCode.NOT_FOUND:
            raise tb_errors.NotFoundError(details) from error
        if code == grpc.StatusCode.PERMISSION_DENIED:
            raise tb_errors.PermissionDeniedError(details) from error
        raise


def _float32_vectors(tensor_protos: Any) -> np.ndarray | None:
    """The [points, width] float32 matrix of tensors that are all float32
    vectors of one width packed in `tensor_content`, read-only; None when any
    is not (they are then decoded one by one)."""
    width = None
    contents = []
    for tensor_proto in tensor_protos:
        dims = tensor_proto.tensor_shape.dim
        if tensor_proto.dtype != _DT_FLOAT or len(dims) != 1:
            return None
        size = dims[0].size
        content = tensor_proto.tensor_content
        if width is None:
            width = size
        if size != width or len(content) != _FLOAT32_BYTES * size:
            return None
        contents.append(content)
    if width is None:
        return None
    decode_bounds.charge_vectors(len(contents), width)
    return np.frombuffer(b"".join(contents), dtype=np.float32).reshape(len(contents), width)
