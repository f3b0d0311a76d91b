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

from tb_stagnation.compat import tensorboard as compat_tensorboard

# One tensor: a million layers, or a million classes. The format's tensors are
# rank 0 (scalars, JSON strings) or one entry per layer or per class.
MAX_TENSOR_ELEMENTS = 1 << 20
# One provider call (a batch of runs, then one run, then one tag when that
# fails): 32M float32 entries, 128 MB, plus the float64 copies the reader makes.
MAX_READ_ELEMENTS = 1 << 25


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
    count = 1
    for dim in tensor_proto.tensor_shape.dim:
        count *= abs(int(dim.size))
        if count > MAX_READ_ELEMENTS:
            # Too large already. A later zero would make it empty, but a
            # tensor claiming 2^40 x 0 entries is of no use either.
            break
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
    budget = getattr(_state, "budget", None)
    if budget is None:
        return
    claimed = claimed_elements(tensor_proto)
    if claimed > MAX_TENSOR_ELEMENTS:
        raise TooLargeError(
            f"a tensor claims {claimed:,} elements (the reader accepts {MAX_TENSOR_ELEMENTS:,})"
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

    _wrap(tensor_util, "make_ndarray")
    # TensorBoard's private `_tensor_size`, once its Python loader is imported
    # (compat/tensorboard.py says which versions have it).
    multiplexer_provider = compat_tensorboard.tensor_size_module()
    if multiplexer_provider is not None:
        _wrap(multiplexer_provider, compat_tensorboard.TENSOR_SIZE)


def _wrap(module: Any, name: str) -> None:
    """Makes `module.name(tensor)` charge `tensor` first; once per process."""
    original: Callable[[Any], Any] | None = getattr(module, name, None)
    if original is None or getattr(original, "_tb_stagnation_bounded", False):
        return
    with _install_lock:
        original = getattr(module, name)
        if getattr(original, "_tb_stagnation_bounded", False):
            return

        def bounded(tensor: Any) -> Any:
            charge(tensor)
            return original(tensor)

        # Marked on the function itself, so a second install sees it (Any:
        # function attributes are not part of a Callable's type).
        marked: Any = bounded
        marked.__doc__ = original.__doc__
        marked.__wrapped__ = original
        marked._tb_stagnation_bounded = True
        setattr(module, name, marked)
