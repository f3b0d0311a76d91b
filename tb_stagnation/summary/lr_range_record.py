"""The `lr_range` record: an LR range test's curve and verdict in a run's log_dir.

One module for both sides of the record (FORMAT.md, `lr_range`): the writer,
`write_lr_range_record`, which `lr_range_test(..., log_dir=D)` and the
callback's `lr_range_test=True` call, and the check every reader applies,
`parse_lr_range_record`, so the two cannot disagree about the fields.

Importing it imports neither TensorFlow nor TensorBoard's writer: the reader,
the analysis and the plugin use the check only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tb_stagnation.summary import tags

if TYPE_CHECKING:
    from typing_extensions import TypeGuard

    from tb_stagnation.lr_range import LRRangeResult

VERDICTS = ("suggested", "never_falls", "diverges_at_start", "nonfinite", "untrainable")
# Every field of the record, in the order of FORMAT.md (http_api.schema.json's
# `LrRange` lists the same ones).
FIELDS = (
    "epoch",
    "verdict",
    "suggested_lr",
    "divergence_lr",
    "steepest_lr",
    "min_loss_lr",
    "reference_loss",
    "learning_rates",
    "losses",
    "smoothed",
    "optimizer",
    "current_lr",
    "min_lr",
    "max_lr",
    "steps",
    "start",
    "nonfinite_data",
    "message",
)
# A record larger than this is no record `lr_range_test` writes (100 steps are
# ~10 KB; 100,000 steps ~7 MB): a damaged or hostile file.
MAX_RECORD_BYTES = 16 << 20
# Steps of one sweep a reader accepts; /series passes the curve on whole.
MAX_CURVE_POINTS = 100_000

# Field -> what it must be. "rate": a positive finite number or null; "number":
# a finite number or null; "curve": a list of finite numbers or nulls, one per step.
_RATES = ("suggested_lr", "divergence_lr", "steepest_lr", "min_loss_lr", "current_lr")
_NUMBERS = ("reference_loss",)
_CURVES = ("learning_rates", "losses", "smoothed")
_TEXTS = ("verdict", "optimizer", "start", "message")


def lr_range_record(result: LRRangeResult, epoch: int | None) -> dict[str, Any]:
    """The record's JSON object: `result.to_json()` plus `"epoch"`."""
    record = dict(result.to_json())
    record["epoch"] = None if epoch is None else int(epoch)
    return record


def write_lr_range_record(log_dir: str, result: LRRangeResult, epoch: int | None) -> None:
    """Append the record of `result` to the run in `log_dir` (its `stagnation/` folder).

    `epoch` is the epoch index after which the test ran, or None for a test
    run on its own or before training; the record's step is that epoch (0 when
    None). A later record supersedes an earlier one (FORMAT.md).

    When this process has a writer open on that folder (a fit with
    StagnationCallback is writing there), the record goes into that writer's
    file; otherwise a new event file holds it alone. Either way the files
    already in the folder are left as they are.

    Raises:
        ValueError: `epoch` is not None or a non-negative integer.
        tb_stagnation.summary.writer.SummaryWriteError: the folder cannot be
            written (an OSError).
    """
    from tb_stagnation.summary.writer import SummaryWriteError, SummaryWriter, open_writer_for

    if epoch is not None and (not _is_integer(epoch) or int(epoch) < 0):
        raise ValueError(f"epoch must be None or a non-negative integer, got {epoch!r}")
    record = lr_range_record(result, epoch)
    step = 0 if epoch is None else int(epoch)
    run_dir = os.path.join(log_dir, tags.RUN_SUBDIR)
    shared = open_writer_for(run_dir)
    if shared is not None:
        try:
            shared.write_lr_range(step, record)
            shared.flush()
            return
        except SummaryWriteError:
            if not shared.closed:
                raise
            # Closed between the look-up and the write (its fit ended): the
            # folder is free, so a file of our own is as good.
    try:
        writer = SummaryWriter(run_dir)
    except Exception as error:  # noqa: BLE001 - any file layer's error, as SummaryWriter's writes
        raise SummaryWriteError(
            f"cannot write to {run_dir}: {type(error).__name__}: {error}"
        ) from error
    try:
        writer.write_lr_range(step, record)
    finally:
        writer.close()


def _is_integer(value: Any) -> bool:
    """An int or a numpy integer (an epoch counted with numpy), never a bool."""
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def parse_lr_range_record(raw: Any) -> dict[str, Any]:
    """The record as stored (a JSON object), checked; raises ValueError saying why not.

    `raw` is the tensor's value (bytes or str). Checked: its size, that it is
    JSON without NaN/Infinity (the writer never writes them), that every
    documented field is there with its type, and a known verdict. Fields this
    version does not know are kept (`FIELDS` names the documented ones).
    """
    if isinstance(raw, bytes):
        if len(raw) > MAX_RECORD_BYTES:
            raise ValueError(f"it holds {len(raw):,} bytes (at most {MAX_RECORD_BYTES:,})")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("it is not UTF-8") from None
    elif isinstance(raw, str):
        text = raw
        if len(text) > MAX_RECORD_BYTES:
            raise ValueError(f"it holds {len(text):,} characters (at most {MAX_RECORD_BYTES:,})")
    else:
        raise ValueError(f"it is a {type(raw).__name__}, not text")
    try:
        record = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("it is not JSON (nested too deeply)") from None
    except ValueError as error:
        raise ValueError(f"it is not JSON ({str(error)[:120]})") from None
    check_lr_range_record(record)
    return record


def check_lr_range_record(record: Any) -> None:
    """Raises ValueError unless `record` is a record of the documented shape
    (what `parse_lr_range_record` checks after decoding)."""
    if not isinstance(record, dict):
        raise ValueError("it is not a JSON object")
    _check_fields(record)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_fields(record: Mapping[str, Any]) -> None:
    missing = [key for key in FIELDS if key not in record]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    for key in _TEXTS:
        if not isinstance(record.get(key), str):
            raise ValueError(f'"{key}" is not a string')
    if record["verdict"] not in VERDICTS:
        # A verdict of a newer version: what it advises is not known here.
        raise ValueError(f'"verdict" is none of {", ".join(VERDICTS)}')
    for key in _RATES:
        value = record.get(key)
        if value is not None and not (_number(value) and value > 0):
            raise ValueError(f'"{key}" is not a positive number or null')
    for key in _NUMBERS:
        value = record.get(key)
        if value is not None and not _number(value):
            raise ValueError(f'"{key}" is not a number or null')
    for key in ("min_lr", "max_lr"):
        value = record.get(key)
        if not (_number(value) and value > 0):
            raise ValueError(f'"{key}" is not a positive number')
    if not record["min_lr"] < record["max_lr"]:
        raise ValueError('"min_lr" is not below "max_lr"')
    steps = record.get("steps")
    if not _integer(steps) or steps < 0:
        raise ValueError('"steps" is not a non-negative integer')
    epoch = record.get("epoch")
    if epoch is not None and (not _integer(epoch) or epoch < 0):
        raise ValueError('"epoch" is not a non-negative integer or null')
    if not isinstance(record.get("nonfinite_data"), bool):
        raise ValueError('"nonfinite_data" is not true or false')
    lengths = []
    for key in _CURVES:
        curve = record.get(key)
        if not isinstance(curve, list):
            raise ValueError(f'"{key}" is not a list')
        if len(curve) > MAX_CURVE_POINTS:
            raise ValueError(f'"{key}" has {len(curve):,} points (at most {MAX_CURVE_POINTS:,})')
        if not all(value is None or _number(value) for value in curve):
            raise ValueError(f'"{key}" holds something other than numbers and nulls')
        lengths.append(len(curve))
    rates, losses, smoothed = lengths
    # One loss per rate tried; the smoothed curve is empty when no step ran.
    if losses != rates or smoothed not in (0, rates):
        raise ValueError('"learning_rates", "losses" and "smoothed" differ in length')
    if any(value is None or value <= 0 for value in record["learning_rates"]):
        raise ValueError('"learning_rates" holds a rate that is not a positive number')
    if record["verdict"] == "suggested" and record.get("suggested_lr") is None:
        raise ValueError('the verdict is "suggested" but "suggested_lr" is null')


def _number(value: Any) -> TypeGuard[float]:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer of 400 digits
        return False


def _integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
