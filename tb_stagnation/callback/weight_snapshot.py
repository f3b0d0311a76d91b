"""The epoch's weight update, measured on the device without a host copy of the weights.

The update ratio needs, per variable, |W_end|^2 and |W_end - W_start|^2.
Reading every variable to numpy at both ends of every epoch cost a Python
call and a device-to-host copy per variable (about 0.4 ms a layer, the
largest per-layer cost of the callback) and held a full copy of the weights
in host memory across the epoch. Here one `tf.function` call at the epoch
start keeps what the end needs on the device, and one call at the end
returns two float64 numbers per variable.

What is kept per variable:

- up to `EXACT_LIMIT` entries: its value (exact, as before);
- larger: a random-sign sketch of `SKETCH_BUCKETS` float64 sums: entry i
  goes to bucket i mod B with its own random sign. The sketch is linear,
  sketch(W_end) - sketch(W_start) = sketch(update), and the squared length of
  that is an unbiased estimate of |update|^2 (the "tug of war" sketch of Alon,
  Matias and Szegedy, 1996) with a relative standard error of about
  sqrt(2 / B) on the square when the update spreads over many buckets: under
  0.6% on the norm for B = 16,381, and exact when it touches fewer entries
  than buckets. B is prime so that a kernel's column (entries a layer width
  apart) spreads over many buckets instead of landing in one. A variable that
  did not change gives exactly 0 (the same sums of the same values). The sums
  are float64, so an update ten orders of magnitude below the weights stays
  measurable; float32 sums would bury a 1e-7 update ratio in rounding.

The signs come from one fixed [SLICE_ROWS, B] table of random signs: the
flat variable is cut into slices of that shape, and slice k reads the table
with its columns turned by k * 7919 (mod B), so no two entries of one bucket
read the same entry of the table. The float64 temporaries stay one slice
large.

So a 1M-parameter Dense kernel is held as 128 KB instead of 4 MB, and what
is held no longer grows with a variable's size.

The call at an epoch's end also returns what it computed of the end weights
(their values or sketches) and keeps it as the next epoch's start, so after
the first epoch there is one call per epoch, not two: `take` is then only
needed where nothing is held. The update so measured is the change from one
epoch end to the next, which is the epoch's training update unless another
callback changes the weights between epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tb_stagnation.compat import keras as compat_keras

# Variables up to this many entries are kept whole: a sketch would not be much smaller.
EXACT_LIMIT = 1 << 16
SKETCH_BUCKETS = 16381  # prime
SLICE_ROWS = 16  # the sign table: 16 x B float32, 1 MB, only when a variable is sketched
SLICE_TURN = 7919  # a prime below B: slices k < B read distinct columns of the table
SIGN_SEED = 20261203


class WeightSnapshot:
    """Start-of-epoch state of some variables, and their update norms at the end."""

    def __init__(self, tf: Any, variables: list) -> None:
        self._tf = tf
        self._variables = list(variables)
        sizes = [int(np.prod(v.shape)) for v in self._variables]
        self._sketched = [
            size > EXACT_LIMIT and not tf.as_dtype(v.dtype).is_complex
            for v, size in zip(self._variables, sizes)
        ]
        rng = np.random.default_rng(SIGN_SEED)
        self._sign_table = (
            rng.choice(np.array([-1.0, 1.0], np.float32), (SLICE_ROWS, SKETCH_BUCKETS))
            if any(self._sketched)
            else None
        )
        self._start: tuple | None = None
        # No AutoGraph: no tensor-dependent Python control flow here.
        self._take = tf.function(self._kept_values, autograph=False)
        self._measure = tf.function(self._square_sums, autograph=False)
        for function in (self._take, self._measure):
            compat_keras.quiet_retracing_warning(function)

    @property
    def held_bytes(self) -> int:
        """Bytes kept on the device between `take` and `measure` (0 when nothing is held)."""
        if self._start is None:
            return 0
        tensors = [self._start[0], self._start[1], *self._start[2]]
        return int(sum(t.shape.num_elements() * t.dtype.size for t in tensors))

    @property
    def holds_start(self) -> bool:
        """Whether a start is held (a `take`, or the last `measure` carried one over)."""
        return self._start is not None

    def take(self) -> None:
        """Keep this moment's weights (or their sketches) for the next `measure`."""
        self._start = self._take() if self._variables else None

    def measure(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per variable, (|W|^2, |W - W_start|^2) as float64; None without a start.

        This moment's weights become the start of the next `measure`, from the
        same device call.
        """
        if not self._variables:
            return np.zeros(0), np.zeros(0)
        if self._start is None:
            return None
        start, self._start = self._start, None
        squares, *end = self._measure(*start)
        self._start = tuple(end)
        result = squares.numpy()
        return result[0], result[1]

    def release(self) -> None:
        """Drop what is held (at the end of a fit: nothing measures it any more)."""
        self._start = None

    # ------------------------------------------------------------------ graph side
    # What is kept is packed into three values (whole real variables in one
    # flat float32 vector, sketches in one matrix, complex variables apart):
    # a tf.function call costs tens of microseconds per argument, which for
    # a few hundred variables was most of the measurement.

    def _kept_values(self) -> tuple:
        tf = self._tf
        whole: list = []
        sketches: list = []
        complex_values: list = []
        signs = self._signs()
        for variable, sketched in zip(self._variables, self._sketched):
            value = tf.convert_to_tensor(variable)
            if sketched:
                sketches.append(_sketch(tf, value, signs, sketches[-1] if sketches else None))
            elif value.dtype.is_complex:
                complex_values.append(tf.identity(value))
            else:
                whole.append(tf.reshape(tf.cast(value, tf.float32), [-1]))
        return _kept(tf, whole, sketches, complex_values)

    def _square_sums(self, flat: Any, matrix: Any, complex_values: list) -> tuple:
        """[2, variables] float64 (|W|^2, |W - W_start|^2), then the kept values of W."""
        tf = self._tf
        weights, updates = [], []
        # What `_kept_values` would return now, from the tensors computed here anyway.
        end_whole: list = []
        end_sketches: list = []
        end_complex: list = []
        signs = self._signs()
        offset = sketch_index = complex_index = 0
        previous_sketch = None
        for variable, sketched in zip(self._variables, self._sketched):
            after = tf.convert_to_tensor(variable)
            if after.dtype.is_complex:
                # |z|^2 counts both parts; a cast to float would drop one.
                before = complex_values[complex_index]
                complex_index += 1
                weights.append(_complex_square_sum(tf, after))
                updates.append(_complex_square_sum(tf, after - before))
                end_complex.append(tf.identity(after))
                continue
            # One fused float32 reduction, no temporary of the variable's size.
            weights.append(tf.cast(2.0 * tf.nn.l2_loss(tf.cast(after, tf.float32)), tf.float64))
            if sketched:
                previous_sketch = _sketch(tf, after, signs, previous_sketch)
                delta = previous_sketch - matrix[sketch_index]
                sketch_index += 1
                end_sketches.append(previous_sketch)
            else:
                size = after.shape.num_elements()
                before = flat[offset : offset + size]
                offset += size
                # The float32 difference of nearby floats is exact; then widen.
                after32 = tf.reshape(tf.cast(after, tf.float32), [-1])
                delta = tf.cast(after32 - before, tf.float64)
                end_whole.append(after32)
            updates.append(tf.reduce_sum(tf.square(delta)))
        squares = tf.stack([tf.stack(weights), tf.stack(updates)])
        return (squares, *_kept(tf, end_whole, end_sketches, end_complex))

    def _signs(self) -> Any:
        """The sign table as one float64 tensor of this trace (None when nothing is sketched)."""
        if self._sign_table is None:
            return None
        return self._tf.cast(self._tf.constant(self._sign_table), self._tf.float64)


def _kept(tf: Any, whole: list, sketches: list, complex_values: list) -> tuple:
    """What is held between `take` and `measure`: (flat float32 vector, sketch matrix, list)."""
    flat = tf.concat(whole, 0) if whole else tf.zeros([0], tf.float32)
    matrix = tf.stack(sketches) if sketches else tf.zeros([0, SKETCH_BUCKETS], tf.float64)
    return flat, matrix, complex_values


def _sketch(tf: Any, value: Any, signs: Any, wait_for: Any = None) -> Any:
    """[SKETCH_BUCKETS] float64: bucket b sums sign * value over entries i = b mod B.

    Full slices go through a `tf.while_loop` with one iteration at a time, and
    everything waits for `wait_for` (the sketch before): left to itself
    TensorFlow runs independent slices at once, and their float64 temporaries
    together were several times the variable's size.
    """
    flat = tf.reshape(value, [-1])
    size = int(flat.shape[0])
    width = SLICE_ROWS * SKETCH_BUCKETS
    full = size // width

    def add_slice(index: Any, total: Any) -> tuple:
        piece = tf.cast(flat[index * width : (index + 1) * width], tf.float64)
        return index + 1, total + _slice_sums(tf, piece, SLICE_ROWS, index, signs)

    with tf.control_dependencies([wait_for] if wait_for is not None else []):
        total = tf.zeros([SKETCH_BUCKETS], tf.float64)
    if full:
        _, total = tf.while_loop(
            lambda index, _: index < full,
            add_slice,
            (tf.constant(0), total),
            parallel_iterations=1,
        )
    if size > full * width:
        # The last, partial slice: padded with zeros to whole rows.
        with tf.control_dependencies([total]):
            wide = tf.cast(flat[full * width :], tf.float64)
        rows = -(-(size - full * width) // SKETCH_BUCKETS)
        piece = tf.pad(wide, [[0, rows * SKETCH_BUCKETS - (size - full * width)]])
        total += _slice_sums(tf, piece, rows, full, signs)
    return total


def _slice_sums(tf: Any, piece: Any, rows: int, index: Any, signs: Any) -> Any:
    """[SKETCH_BUCKETS]: bucket sums of slice `index` (rows x B float64 entries),
    each entry times its sign from the table turned for that slice."""
    turn = tf.math.floormod(index * SLICE_TURN, SKETCH_BUCKETS)
    table = tf.roll(signs[:rows], shift=-turn, axis=1)
    return tf.reduce_sum(tf.reshape(piece, [rows, SKETCH_BUCKETS]) * table, axis=0)


def _complex_square_sum(tf: Any, value: Any) -> Any:
    magnitude = tf.math.abs(tf.cast(value, tf.complex128))
    return tf.reduce_sum(tf.square(tf.cast(magnitude, tf.float64)))
