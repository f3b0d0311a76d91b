"""Writes the summary format into event files, with no TensorFlow.

The callback uses it, and so do the tests and benchmarks that need large
logdirs fast. It wraps TensorBoard's own `EventFileWriter` (the writer that
PyTorch's SummaryWriter uses too), so the files are read by TensorBoard's
Python and Rust loaders alike, locally or on any filesystem `tf.io.gfile` knows.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from tb_stagnation.compat.tensorboard import event_file_handle
from tb_stagnation.summary import metadata, tags

_FILENAME_SUFFIX = ".stagnation.v1"


class SummaryWriteError(OSError):
    """Writing an event file failed (disk full, folder gone, no permission)."""


class SummaryWriter:
    """Appends epochs of stagnation data to one event file in `run_dir`.

    Values of one step go into one event: an epoch is one record, so a reader
    never sees half of it, and a killed process loses at most the epoch being
    written.
    """

    def __init__(self, run_dir: str, flush_secs: float = 30.0) -> None:
        _wait_for_a_new_second(run_dir)
        self._writer = EventFileWriter(
            run_dir, flush_secs=flush_secs, filename_suffix=_FILENAME_SUFFIX
        )
        self._tags_with_metadata: set[str] = set()
        # A record may arrive from another thread than the epochs' (an LR range
        # test written into the folder of a running fit): one event at a time.
        self._lock = threading.RLock()
        self.closed = False
        _register(self)

    @property
    def run_dir(self) -> str:
        return self._writer.get_logdir()

    def write_step(
        self,
        step: int,
        scalars: Mapping[str, float] | None = None,
        layer_stats: Mapping[str, Any] | None = None,
        class_counts: Any | None = None,
        wall_time: float | None = None,
    ) -> None:
        """Write one step (an epoch, or a batch for `batch/` tags).

        `scalars` become rank-0 float32 (what the Rust data server keeps);
        `layer_stats` maps a `layers/` tag to a vector with one entry per layer.
        Non-finite values are written as they are: NaN is evidence.
        """
        values = []
        for tag, value in (scalars or {}).items():
            values.append(self._value(tag, metadata.KIND_SCALAR, np.float32(value)))
        for tag, vector in (layer_stats or {}).items():
            values.append(
                self._value(
                    tag,
                    metadata.KIND_LAYER_STAT,
                    np.asarray(vector, dtype=np.float32).reshape(-1),
                )
            )
        if class_counts is not None:
            values.append(
                self._value(
                    tags.LABEL_CLASS_COUNTS,
                    metadata.KIND_CLASS_COUNTS,
                    np.asarray(class_counts, dtype=np.float32).reshape(-1),
                )
            )
        if values:
            self._add(step, values, wall_time)

    def write_model_card(
        self, step: int, card: Mapping[str, Any], wall_time: float | None = None
    ) -> None:
        """Write the model card (a JSON object, FORMAT.md) at `step`."""
        self._write_json(step, tags.MODEL_CARD, metadata.KIND_MODEL_CARD, card, wall_time)

    def write_preflight(
        self, step: int, facts: Mapping[str, Any], wall_time: float | None = None
    ) -> None:
        """Write the pre-flight record (a JSON object, FORMAT.md) at `step`."""
        self._write_json(step, tags.PREFLIGHT, metadata.KIND_PREFLIGHT, facts, wall_time)

    def write_lr_range(
        self, step: int, record: Mapping[str, Any], wall_time: float | None = None
    ) -> None:
        """Write an LR range test's record (a JSON object, FORMAT.md) at `step`."""
        self._write_json(step, tags.LR_RANGE, metadata.KIND_LR_RANGE, record, wall_time)

    def _write_json(
        self, step: int, tag: str, kind: str, record: Mapping[str, Any], wall_time: float | None
    ) -> None:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, default=str)
        value = self._value(tag, kind, np.array(text.encode("utf-8"), dtype=object))
        self._add(step, [value], wall_time)

    def flush(self) -> None:
        with self._write_errors():
            self._writer.flush()

    def close(self) -> None:
        with self._lock:
            self.closed = True
        _unregister(self)
        try:
            with self._write_errors():
                self._writer.close()
        finally:
            # After a failed write TensorBoard's writer raises on its final
            # flush before it closes the file; close it ourselves then.
            handle = event_file_handle(self._writer)
            try:
                if handle is not None:
                    handle.close()
            except Exception:  # noqa: BLE001 - already failing; the first error is raised
                pass

    def _value(
        self, tag: str, kind: str, array: np.ndarray | np.generic
    ) -> summary_pb2.Summary.Value:
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(array))
        # Metadata only matters on a tag's first value in a file; TensorBoard's
        # loaders keep the first one they see.
        with self._lock:
            if tag not in self._tags_with_metadata:
                value.metadata.CopyFrom(metadata.create_summary_metadata(kind))
                self._tags_with_metadata.add(tag)
        return value

    def _add(self, step: int, values: list, wall_time: float | None) -> None:
        event = event_pb2.Event(
            step=int(step),
            wall_time=time.time() if wall_time is None else wall_time,
            summary=summary_pb2.Summary(value=values),
        )
        with self._lock, self._write_errors():
            self._writer.add_event(event)

    @contextlib.contextmanager
    def _write_errors(self):
        # TensorBoard's writer reports a failed background write (ENOSPC,
        # EFBIG, a deleted folder) at the next call, as whatever the file
        # layer raised; one error type with the folder in it is what a user
        # can act on.
        try:
            yield
        except SummaryWriteError:
            raise
        except Exception as error:  # noqa: BLE001 - any I/O layer's error type
            raise SummaryWriteError(
                f"cannot write to {self.run_dir} (disk full or no longer writable?): "
                f"{type(error).__name__}: {error}"
            ) from error


# The writers open in this process, per folder: a record for a folder a fit is
# writing to goes into that fit's file (`open_writer_for`).
_OPEN: dict[str, list[SummaryWriter]] = {}
_OPEN_LOCK = threading.Lock()


def _folder_key(run_dir: str) -> str:
    if "://" in run_dir:
        return run_dir.rstrip("/")
    return os.path.realpath(run_dir)


def _register(writer: SummaryWriter) -> None:
    with _OPEN_LOCK:
        _OPEN.setdefault(_folder_key(writer.run_dir), []).append(writer)


def _unregister(writer: SummaryWriter) -> None:
    with _OPEN_LOCK:
        key = _folder_key(writer.run_dir)
        writers = [w for w in _OPEN.get(key, []) if w is not writer]
        if writers:
            _OPEN[key] = writers
        else:
            _OPEN.pop(key, None)


def open_writer_for(run_dir: str) -> SummaryWriter | None:
    """The newest writer of this process still open on `run_dir`, if any.

    TensorBoard's Python loader reads one event file per folder at a time and
    never returns to an older one: a second file opened while a fit writes
    the first would hide that fit's later epochs from it. A record for a
    folder in use therefore goes into the file already open there.
    """
    with _OPEN_LOCK:
        writers = _OPEN.get(_folder_key(run_dir), [])
        return writers[-1] if writers else None


def _wait_for_a_new_second(run_dir: str) -> None:
    """Keep event files of one folder in creation order by name.

    TensorBoard names a file by its creation second, then host, pid and a
    process-wide counter that is not zero-padded: two files opened in the same
    second sort "...10" before "...9", and TensorBoard's loaders, which read a
    folder's files in name order, then take the newer file for the older (the
    Rust data server drops its data). Two writers in one folder within a second
    happen when `fit` is called twice in quick succession; waiting out the
    second costs at most one second, only then.
    """
    if "://" in run_dir or not os.path.isdir(run_dir):
        return
    now = time.time()
    prefix = f"events.out.tfevents.{int(now):010d}."
    if any(name.startswith(prefix) for name in os.listdir(run_dir)):
        time.sleep(1.0 - (now % 1.0) + 0.01)
