"""Helpers of the hostile-file tests (no tests here): event files that claim
more than they hold, and a subprocess runner that reports its peak memory.

The files are raw TFRecord bytes, as any writer (a damaged or a hostile one)
can leave them; they are read only through TensorBoard's own loaders.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.summary.writer.record_writer import RecordWriter

from tb_stagnation.summary import metadata, tags

# Address space of a child: a reader that ignores a claim fails with a
# MemoryError here instead of taking the machine's memory (other jobs share it).
CHILD_ADDRESS_SPACE = 4 << 30
# What a child may really use: the bound.
PEAK_RSS_LIMIT = 1536 << 20

# Every tag the format defines, by the kind its metadata declares.
SCALAR_TAGS = sorted(
    {
        value
        for name, value in vars(tags).items()
        if name.isupper()
        and isinstance(value, str)
        and "/" in value
        and not value.endswith("/")
        and value not in tags.LAYER_STATS
        and value != tags.LABEL_CLASS_COUNTS
    }
    | {tags.logs_tag("loss"), tags.logs_tag("accuracy"), tags.logs_tag("val_loss")}
)
VECTOR_TAGS = [*tags.LAYER_STATS, tags.LABEL_CLASS_COUNTS]
STRING_TAGS = [tags.MODEL_CARD, tags.PREFLIGHT]


def kind_of(tag: str) -> str:
    if tag in tags.LAYER_STATS:
        return metadata.KIND_LAYER_STAT
    if tag == tags.LABEL_CLASS_COUNTS:
        return metadata.KIND_CLASS_COUNTS
    if tag == tags.MODEL_CARD:
        return metadata.KIND_MODEL_CARD
    if tag == tags.PREFLIGHT:
        return metadata.KIND_PREFLIGHT
    return metadata.KIND_SCALAR


def record(event: event_pb2.Event) -> bytes:
    buffer = io.BytesIO()
    RecordWriter(buffer).write(event.SerializeToString())
    return buffer.getvalue()


def claiming_tensor(
    dims, dtype: int = types_pb2.DT_FLOAT, fill: str = "one"
) -> tensor_pb2.TensorProto:
    """A tensor whose shape claims `dims` while it holds one value (`fill`
    "one"), none ("none"), or 8 bytes of packed content ("content")."""
    tensor = tensor_pb2.TensorProto(dtype=dtype)
    for size in dims:
        tensor.tensor_shape.dim.add(size=size)
    if fill == "content":
        tensor.tensor_content = b"\x00" * 8
    elif fill == "one":
        if dtype == types_pb2.DT_STRING:
            tensor.string_val.append(b'{"format_version": 1}')
        elif dtype == types_pb2.DT_DOUBLE:
            tensor.double_val.append(0.5)
        elif dtype == types_pb2.DT_INT64:
            tensor.int64_val.append(1)
        else:
            tensor.float_val.append(0.5)
    return tensor


def hostile_event_file(
    claims: list[tuple[str, tensor_pb2.TensorProto]], epochs: int = 3, with_loss: bool = True
) -> bytes:
    """`epochs` events, each holding the loss (unless the claims do) and every claim."""
    records = [record(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2"))]
    for epoch in range(epochs):
        values = []
        entries = list(claims)
        if with_loss:
            loss = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0 - epoch / 10])
            entries.insert(0, (tags.logs_tag("loss"), loss))
        for tag, tensor in entries:
            value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
            if epoch == 0:
                value.metadata.CopyFrom(metadata.create_summary_metadata(kind_of(tag)))
            values.append(value)
        event = event_pb2.Event(
            step=epoch, wall_time=1.7e9 + epoch, summary=summary_pb2.Summary(value=values)
        )
        records.append(record(event))
    return b"".join(records)


def length_claim_record(length: int) -> bytes:
    """A TFRecord header claiming `length` bytes, its checksum valid, and
    a few bytes of data: what a reader must not allocate up front."""
    header = struct.pack("<Q", length)
    return header + struct.pack("<I", masked_crc32c(header)) + b"\x00" * 16


def write_file(folder: str, data: bytes, index: int = 0) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"events.out.tfevents.{1700000000 + index}.hostile.{index}.v1")
    with open(path, "wb") as handle:
        handle.write(data)
    return path


@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes, of the child and every descendant it waited for
    seconds: float


# Runs argv[3:] as a grandchild with its address space capped, waits for it
# and writes its exit status and peak RSS (wait4) to argv[1]; argv[2] is the
# cap in bytes. Linux carries a process's peak RSS across fork and exec: a
# child forked straight from the test process (over 1 GB after the suite's
# trainings) would report at least that. Forked from this small launcher
# instead, the grandchild's figure is its own (and its waited-for children's).
_LAUNCHER = textwrap.dedent(
    """
    import json, os, resource, sys
    cap = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(sys.argv[3], sys.argv[3:])
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(sys.argv[1], "w") as out:
        json.dump({"status": status, "maxrss": usage.ru_maxrss}, out)
    """
)


def run_bounded(argv: list[str], timeout: float = 240, env: dict | None = None) -> ChildResult:
    """Runs `argv` with its address space capped; its own peak RSS (see _LAUNCHER)."""
    started = time.monotonic()
    out_path = f"/tmp/tb_stagnation_child_{os.getpid()}_{time.monotonic_ns()}"
    with open(out_path + ".out", "w+b") as out, open(out_path + ".err", "w+b") as err:
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, out_path + ".json", str(CHILD_ADDRESS_SPACE), *argv],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # one process group: a timeout kills both
        )
        try:
            launcher.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        try:
            with open(out_path + ".json") as handle:
                waited = json.load(handle)
            returncode = os.waitstatus_to_exitcode(waited["status"])
            peak = int(waited["maxrss"]) * 1024
        except (OSError, ValueError, KeyError):  # killed before the grandchild ended
            returncode, peak = -signal.SIGKILL, 0
        out.seek(0)
        err.seek(0)
        result = ChildResult(
            returncode=returncode,
            stdout=out.read().decode("utf-8", errors="replace"),
            stderr=err.read().decode("utf-8", errors="replace"),
            peak_rss=peak,
            seconds=time.monotonic() - started,
        )
    for suffix in (".out", ".err", ".json"):
        if os.path.exists(out_path + suffix):
            os.unlink(out_path + suffix)
    return result


def python_child(code: str, *args: str, timeout: float = 240) -> ChildResult:
    """`code` run by this interpreter in a bounded child, `args` as sys.argv[1:]."""
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    return run_bounded([sys.executable, "-c", code, *args], timeout=timeout, env=env)


def cli_child(*args: str, timeout: float = 240) -> ChildResult:
    """`tb-stagnation ARGS` as a user runs it: the installed console script."""
    script = os.path.join(os.path.dirname(sys.executable), "tb-stagnation")
    return run_bounded([script, *args], timeout=timeout)


# A child process that serves the real plugin (werkzeug test client) on a
# logdir and asks /runs, then /report and /series of every run it lists.
ROUTES_SCRIPT = textwrap.dedent(
    """
    import json, sys, urllib.parse
    from plugin_support import ServedPlugin
    served = ServedPlugin(sys.argv[1])
    runs = served.get("/runs")
    out = {"runs": [runs.status_code, json.loads(runs.data)], "routes": {}}
    for row in out["runs"][1].get("runs", []):
        query = "?run=" + urllib.parse.quote(row["run"], safe="")
        for route in ("/report", "/series"):
            response = served.get(route + query)
            out["routes"][route + " " + row["run"]] = [
                response.status_code, response.headers["Content-Type"], json.loads(response.data)
            ]
    print(json.dumps(out))
    """
)
