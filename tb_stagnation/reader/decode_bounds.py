"""Bounds on how much one read may decode out of event files.

An event file is small but may claim anything: a tensor of one float whose
shape claims 2^28 elements is a dozen bytes on disk, and TensorBoard's
`tensor_util.make_ndarray`, which both of its data providers call on every
value they return, repeats that float into a 1 GiB array (a claim of 10^12
is a MemoryError, after the process has grown by gigabytes). No provider
method tells the claim before decoding, so the check has to sit in front of
`make_ndarray` itself.

`bounded_decoding()` makes the calls of the current thread inside it check
each tensor's claimed element count, against a bound per tensor and a budget
per read, before anything is allocated; a claim over either raises
`TooLargeError`, a ValueError, which the reader already treats as "this tag
cannot be decoded" (skipped, with a note). Outside it, and in every other
thread (TensorBoard serves other plugins concurrently), `make_ndarray`
behaves exactly as TensorBoard wrote it.

The Python loader's blob sequences (where Keras's callback logs the model
config) have the same hole: `read_blob_sequences` makes one reference per
element the shape claims, 10^12 of them for a 10^12 claim, through the
module function `_tensor_size`; it is bounded the same way when present.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from tensorboard.compat.proto import types_pb2

from tb_stagnation.compat import tensorboard as compat_tensorboard

# One tensor: a million layers, or a million classes. The format's tensors are
# rank 0 (scalars, JSON strings) or one entry per layer or per class.
MAX_TENSOR_ELEMENTS = 1 << 20
# One provider call (a batch of runs, then one run, then one tag when that
# fails): 32M float32 entries, 128 MB, plus the float64 copies the reader makes.
MAX_READ_ELEMENTS = 1 << 25
_DT_FLOAT = types_pb2.DT_FLOAT


class TooLargeError(ValueError):
    """A tensor, or one read, claims more elements than the reader accepts."""


_state = threading.local()
_install_lock = threading.Lock()


def claimed_elements(tensor_proto: Any) -> int:
    """The element count a TensorProto's shape claims (what `make_ndarray`
    would allocate), or the count of values it actually holds if larger.

    A negative dimension (TensorFlow's "unknown") counts by its magnitude: a
    claim is judged by how large it could make an array, never trusted smaller.
    """
    # Past MAX_READ_ELEMENTS the count stops: a later zero would make it
    # empty, but a tensor claiming 2^40 x 0 entries is of no use either.
    count = _shape_elements([dim.size for dim in tensor_proto.tensor_shape.dim])
    held = len(tensor_proto.tensor_content) // 4 + sum(
        len(values)
        for values in (
            tensor_proto.float_val,
            tensor_proto.double_val,
            tensor_proto.int_val,
            tensor_proto.int64_val,
            tensor_proto.string_val,
            tensor_proto.half_val,
            tensor_proto.bool_val,
        )
    )
    return max(count, held)


def charge(tensor_proto: Any) -> None:
    """Checks one tensor against the bounds of the enclosing
    `bounded_decoding()`; a no-op outside it. Raises TooLargeError."""
    if getattr(_state, "budget", None) is not None:
        _charge_elements(claimed_elements(tensor_proto))


def decode_float32(tensor_proto: Any) -> np.ndarray | None:
    """`make_ndarray(tensor_proto)` for the two forms scalars and vectors take
    in our files and Keras's (a float32 scalar in `float_val`, float32 packed
    in `tensor_content`), charged for what it allocates; None for any other.

    `make_ndarray` spends ~15 us a tensor on dtype lookups and `np.prod`, and
    a cold `/runs` decodes a value per tag, epoch and run: 570,000 scalars
    for 100 runs of 300 epochs. This takes ~1 us, with the same result.
    """
    if tensor_proto.dtype != _DT_FLOAT:
        return None
    content = tensor_proto.tensor_content
    if content:
        shape = [dim.size for dim in tensor_proto.tensor_shape.dim]
        _charge_elements(max(len(content) // 4, _shape_elements(shape)))
        # As make_ndarray: a copy (the buffer belongs to the proto), reshaped
        # to the claim, a ValueError when they disagree.
        return np.frombuffer(content, dtype=np.float32).copy().reshape(shape)
    if not tensor_proto.tensor_shape.dim and len(tensor_proto.float_val) == 1:
        _charge_elements(1)
        return np.array(tensor_proto.float_val[0], dtype=np.float32)
    return None


def charge_vectors(count: int, width: int) -> None:
    """Charges `count` vectors of `width` elements each, decoded in one piece,
    to the enclosing `bounded_decoding()`: each is one tensor of `width`
    elements. A no-op outside it. Raises TooLargeError."""
    _charge_elements(count * width, per_tensor=width)


def _shape_elements(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= abs(int(size))
        if count > MAX_READ_ELEMENTS:
            break
    return count


def _charge_elements(claimed: int, per_tensor: int | None = None) -> None:
    """Charges `claimed` elements to this thread's read, if inside one; one
    tensor's, or several of `per_tensor` elements each."""
    budget = getattr(_state, "budget", None)
    if budget is None:
        return
    largest = claimed if per_tensor is None else per_tensor
    if largest > MAX_TENSOR_ELEMENTS:
        raise TooLargeError(
            f"a tensor claims {largest:,} elements (the reader accepts {MAX_TENSOR_ELEMENTS:,})"
        )
    budget[0] -= claimed
    if budget[0] < 0:
        raise TooLargeError(
            f"one read holds more than {MAX_READ_ELEMENTS:,} tensor elements in all"
        )


@contextmanager
def bounded_decoding() -> Iterator[None]:
    """Every tensor this thread decodes inside is checked before allocation."""
    _install()
    if getattr(_state, "budget", None) is not None:
        yield  # nested: the outer read's budget applies
        return
    _state.budget = [MAX_READ_ELEMENTS]
    try:
        yield
    finally:
        _state.budget = None


def _install() -> None:
    from tensorboard.util import tensor_util

    _wrap(tensor_util, "make_ndarray", fast=decode_float32)
    # TensorBoard's private `_tensor_size`, once its Python loader is imported
    # (compat/tensorboard.py says which versions have it).
    multiplexer_provider = compat_tensorboard.tensor_size_module()
    if multiplexer_provider is not None:
        _wrap(multiplexer_provider, compat_tensorboard.TENSOR_SIZE)


def _wrap(module: Any, name: str, fast: Callable[[Any], Any] | None = None) -> None:
    """Makes `module.name(tensor)` charge `tensor` first; once per process.
    Inside `bounded_decoding()`, `fast(tensor)` answers instead when not None."""
    original: Callable[[Any], Any] | None = getattr(module, name, None)
    if original is None or getattr(original, "_tb_stagnation_bounded", False):
        return
    with _install_lock:
        original = getattr(module, name)
        if getattr(original, "_tb_stagnation_bounded", False):
            return

        def bounded(tensor: Any) -> Any:
            if fast is not None and getattr(_state, "budget", None) is not None:
                decoded = fast(tensor)
                if decoded is not None:
                    return decoded
            charge(tensor)
            return original(tensor)

        # Marked on the function itself, so a second install sees it (Any:
        # function attributes are not part of a Callable's type).
        marked: Any = bounded
        marked.__doc__ = original.__doc__
        marked.__wrapped__ = original
        marked._tb_stagnation_bounded = True
        setattr(module, name, marked)
