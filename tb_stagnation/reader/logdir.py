"""Opens a logdir outside TensorBoard (CLI, notebooks) as a data provider.

TensorBoard's own loaders do the reading, as they would under `tensorboard
--logdir`: its Rust data server when installed (it parses event files natively
and fast: the CLI must analyse 100 runs in seconds), else its Python
`EventMultiplexer`.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tb_stagnation.reader.errors import LogdirError
from tb_stagnation.reader.provider_reader import ProviderReader, RunListing
from tb_stagnation.reader.run_data import RunData
from tb_stagnation.summary import metadata

# Generous: the Rust server loads ~1M events/s; this bounds a hung start only.
_DATA_SERVER_LOAD_TIMEOUT_S = 300.0
_LOAD_FINISHED_MARKER = b"Finished load cycle"
# Runs read per provider call by `iter_runs`: batched reads stay fast, and a
# logdir of 1,000 runs never has all their arrays in memory at once.
READ_BATCH = 128


@dataclass(frozen=True)
class LoadWarning:
    """An event file TensorBoard's loader could not read to its end."""

    run: str  # the TensorBoard run (the file's folder relative to the logdir)
    path: str
    reason: str  # what the loader said, in a few words

    @property
    def message(self) -> str:
        return (
            f"TensorBoard stopped reading {self.path} at {self.reason}: what the file holds "
            "after that point is missing."
        )


class LogdirSource:
    """The logical runs of one opened logdir.

    `load_warnings` lists the event files the loader could not read to the end
    (a corrupt record); each is also a note of the run it belongs to. Only the
    Rust data server reports them: the Python loader cannot tell a corrupt
    record from one still being written.
    """

    def __init__(self, reader: ProviderReader, load_warnings: Iterable[LoadWarning] = ()) -> None:
        self._reader = reader
        self._listings: dict[str, RunListing] | None = None
        self.load_warnings = list(load_warnings)

    def listings(self) -> dict[str, RunListing]:
        if self._listings is None:
            self._listings = self._reader.list_runs()
        return self._listings

    def list_runs(self) -> list[str]:
        """Logical run names, sorted."""
        return sorted(self.listings())

    def read_runs(self, names: list[str]) -> list[RunData]:
        listings = self.listings()
        runs = self._reader.read_runs([listings[name] for name in names])
        for run in runs if self.load_warnings else ():
            members = set(listings[run.name].members.values())
            run.notes.extend(w.message for w in self.load_warnings if w.run in members)
        return runs

    def iter_runs(self, names: list[str], batch: int = READ_BATCH) -> Iterator[RunData]:
        """The runs `names`, in order, read `batch` at a time: one batch of
        arrays in memory at once, however many runs the logdir holds."""
        for start in range(0, len(names), batch):
            yield from self.read_runs(names[start : start + batch])


@contextmanager
def open_logdir(logdir: str, use_data_server: bool | None = None) -> Iterator[LogdirSource]:
    """Yields a LogdirSource; raises LogdirError with a one-line reason.

    Args:
        logdir: a local folder, or any path TensorBoard reads (gs://, s3://...).
        use_data_server: True/False to force a loader; None picks the Rust data
            server when it is installed.
    """
    _check_local_logdir(logdir)
    binary = _data_server_binary() if use_data_server in (None, True) else None
    if use_data_server and binary is None:
        raise LogdirError("TensorBoard's data server (tensorboard-data-server) is not installed")
    if binary is not None:
        with _data_server_provider(binary, logdir) as provider:
            yield LogdirSource(ProviderReader(provider), provider.load_warnings)
    else:
        yield LogdirSource(ProviderReader(_python_provider(logdir)))


def _is_remote(logdir: str) -> bool:
    return "://" in logdir


def _check_local_logdir(logdir: str) -> None:
    if _is_remote(logdir):
        return
    if not os.path.exists(logdir):
        raise LogdirError(f"{logdir}: no such directory")
    if not os.path.isdir(logdir):
        raise LogdirError(f"{logdir}: not a directory")
    if not os.access(logdir, os.R_OK | os.X_OK):
        raise LogdirError(f"{logdir}: permission denied")


def _data_server_binary():
    try:
        from tensorboard.data import server_ingester

        return server_ingester.get_server_binary()
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return None


@contextmanager
def _data_server_provider(binary, logdir: str):
    import grpc
    from tensorboard.data import grpc_provider

    with tempfile.TemporaryDirectory(prefix="tb_stagnation_") as tmp:
        port_file = os.path.join(tmp, "port")
        error_file = os.path.join(tmp, "error")
        process = subprocess.Popen(
            [
                binary.path,
                f"--logdir={os.path.expanduser(logdir)}",
                "--reload=once",
                f"--samples-per-plugin={metadata.PLUGIN_NAME}=all,scalars=all",
                "--port=0",
                f"--port-file={port_file}",
                f"--error-file={error_file}",
                "--die-after-stdin",
                "--verbose",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        channel = None
        try:
            load_warnings = _wait_for_load(process, error_file, logdir)
            with open(port_file, encoding="ascii") as port_text:
                port = int(port_text.read().strip())
            channel = grpc.insecure_channel(
                f"localhost:{port}",
                options=[("grpc.max_receive_message_length", 1 << 30)],
            )
            provider = _fast_tensor_provider_class()(
                f"localhost:{port}", grpc_provider.make_stub(channel)
            )
            provider.load_warnings = load_warnings
            yield provider
        finally:
            if channel is not None:
                channel.close()
            process.stdin.close()  # --die-after-stdin: the server exits
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            process.stderr.close()


def _fast_tensor_provider_class():
    from tensorboard.compat.proto import types_pb2
    from tensorboard.data import grpc_provider, provider
    from tensorboard.data.proto import data_provider_pb2
    from tensorboard.util import tensor_util

    def to_numpy(tensor_proto):
        # TensorBoard's make_ndarray costs ~8 us a tensor; our per-layer vectors
        # are packed float32, which frombuffer reads in well under 1 us.
        if tensor_proto.dtype == types_pb2.DT_FLOAT and tensor_proto.tensor_content:
            shape = [dim.size for dim in tensor_proto.tensor_shape.dim]
            return np.frombuffer(tensor_proto.tensor_content, dtype="<f4").reshape(shape)
        return tensor_util.make_ndarray(tensor_proto)

    class FastTensorGrpcProvider(grpc_provider.GrpcDataProvider):
        """TensorBoard's gRPC data provider with a faster tensor decoding."""

        def read_tensors(
            self, ctx=None, *, experiment_id, plugin_name, downsample=None, run_tag_filter=None
        ):
            request = data_provider_pb2.ReadTensorsRequest(experiment_id=experiment_id)
            request.plugin_filter.plugin_name = plugin_name
            request.downsample.num_points = downsample
            if run_tag_filter is not None:
                if run_tag_filter.runs is not None:
                    request.run_tag_filter.runs.names.extend(sorted(run_tag_filter.runs))
                if run_tag_filter.tags is not None:
                    request.run_tag_filter.tags.names.extend(sorted(run_tag_filter.tags))
            response = self._stub.ReadTensors(request)
            result = {}
            for run_entry in response.runs:
                by_tag = result.setdefault(run_entry.run_name, {})
                for tag_entry in run_entry.tags:
                    data = tag_entry.data
                    by_tag[tag_entry.tag_name] = [
                        provider.TensorDatum(step=step, wall_time=wall_time, numpy=to_numpy(value))
                        for step, wall_time, value in zip(data.step, data.wall_time, data.value)
                    ]
            return result

    return FastTensorGrpcProvider


def _wait_for_load(process: subprocess.Popen, error_file: str, logdir: str) -> list[LoadWarning]:
    """Block until the server finished its one load cycle; the files it
    could not read to the end, from its log."""
    deadline = time.monotonic() + _DATA_SERVER_LOAD_TIMEOUT_S
    pending = b""
    warnings: list[LoadWarning] = []
    stderr = process.stderr
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stderr], [], [], 0.5)
        if ready:
            chunk = os.read(stderr.fileno(), 65536)
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-65536:]
            for line in lines:
                warning = _load_warning(line, logdir)
                if warning is not None:
                    warnings.append(warning)
                if _LOAD_FINISHED_MARKER in line:
                    return warnings
            if _LOAD_FINISHED_MARKER in pending:
                return warnings
            if chunk:
                continue
        if process.poll() is not None:
            reason = ""
            if os.path.exists(error_file):
                with open(error_file, encoding="utf-8", errors="replace") as error_text:
                    reason = error_text.read().strip()
            raise LogdirError(reason or f"TensorBoard's data server exited ({process.returncode})")
    raise LogdirError("TensorBoard's data server did not finish loading in time")


# The data server's log line for a file it stops reading (rustboard_core/src/run.rs).
_READ_ERROR = re.compile(r"WARN\s+rustboard_core::run\] Read error in (.+?): ([A-Za-z]+\(.*)$")
_REASONS = (
    ("Crc", "a corrupt record (checksum mismatch)"),
    ("Truncat", "a cut-off record"),
    ("Decode", "a record that is not an event"),
)


def _load_warning(line: bytes, logdir: str) -> LoadWarning | None:
    match = _READ_ERROR.search(line.decode("utf-8", errors="replace").rstrip())
    if match is None:
        return None
    path, error = match.groups()
    reason = next((text for key, text in _REASONS if key in error), None)
    if reason is None:
        reason = "a read error (" + " ".join(error.split())[:200] + ")"
    run = os.path.relpath(os.path.dirname(path), os.path.expanduser(logdir)).replace(os.sep, "/")
    return LoadWarning(run=run, path=path, reason=reason)


def _python_provider(logdir: str):
    if not _is_remote(logdir) and "tensorflow" not in sys.modules:
        # TensorBoard's compat layer imports TensorFlow (2-3 s, 500 MB) when it
        # can; its pure-Python stub reads local files just as well. A registered
        # `tensorboard.compat.notf` module is TensorBoard's own switch for that.
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("notf"))
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0, "scalars": 0},
        size_guidance={"tensors": 0, "scalars": 0},
    )
    try:
        multiplexer.AddRunsFromDirectory(logdir)
        multiplexer.Reload()
    except Exception as error:  # noqa: BLE001 - a filesystem error of any kind
        raise LogdirError(f"{logdir}: {error}") from None
    return data_provider.MultiplexerDataProvider(multiplexer, logdir)
