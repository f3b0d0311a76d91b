"""In-graph accumulators that the real training steps feed, and their host side.

`hooks.py` calls `record_data` from inside `Model._compute_loss` and
`record_gradients` from inside `optimizer.apply`, while Keras traces the train
function. Both only add a few reductions and one `assign_add` per variable;
nothing leaves the device until the callback reads the accumulators once per
epoch (and the fingerprint ring every `ring_size / 2` batches).

Every op added here must be unable to fail at run time (a failing op would
stop the user's training, and we cannot catch it there): label ids are
clipped before `unsorted_segment_sum`, scatter indices are bounded, shapes are
checked at trace time and a mismatch skips the statistic.

Under a `tf.distribute` strategy the variables are ON_READ: each replica adds
to its own copy without any cross-device sync, and the host combines the
copies (`strategy.experimental_local_results`): sums for counts and sums,
maximum for maxima, replica 0 for the probe and the batch loss. Gradients are
seen per replica, before the all-reduce: a norm is that of one replica's
share of the batch (with Keras's 1/replicas loss scaling undone), averaged
over replicas and steps. It runs somewhat above the norm of the synchronised
gradient, whose noise is averaged over the whole batch; computing that one
would take a second all-reduce of every gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tb_stagnation.callback.model_info import (
    TASK_BINARY,
    TASK_CLASSIFICATION,
    TASK_REGRESSION,
    select_target,
)

# Regression targets wider than this are pooled into one "dimension" for the
# best-constant baseline (a slight overestimate of it), to bound the accumulator.
MAX_REGRESSION_DIMS = 4096
# Inputs wider than this are fingerprinted by their sums only.
MAX_FINGERPRINT_FEATURES = 1 << 20
# The probe never holds more than this many bytes of inputs; larger inputs get fewer samples.
PROBE_BYTES_LIMIT = 64 << 20
FINGERPRINT_SEED = 20240611


@dataclass(frozen=True)
class LeafSpec:
    """One input tensor of a training batch, without its batch dimension."""

    shape: tuple  # ints or None
    dtype: Any  # tf.DType

    @property
    def per_sample_size(self) -> int | None:
        if any(d is None for d in self.shape):
            return None
        return int(math.prod(self.shape))


@dataclass(frozen=True)
class LabelPlan:
    """What `record_data` accumulates about the labels of the stats output."""

    output_index: int
    output_names: tuple
    task: str
    num_classes: int | None
    sparse: bool  # classification only: integer ids (True) or one-hot/probabilities
    dims: int  # regression only: entries per sample kept apart (1 when pooled)

    @property
    def width(self) -> int:
        if self.task in (TASK_CLASSIFICATION, TASK_BINARY):
            return int(self.num_classes or 0)
        if self.task == TASK_REGRESSION:
            return 1 + 3 * self.dims  # rows, then per-dim M2, Q, S (see record_data)
        return 0


@dataclass(frozen=True)
class RecorderPlan:
    """Everything the recorder must know before the first trace."""

    num_layers: int
    layer_of_variable: dict  # id(Keras variable) -> layer index
    gradient_freq: int
    x_leaves: tuple  # LeafSpec per numeric input leaf, in tree.flatten order
    probe_size: int
    label: LabelPlan | None
    batch_logging: bool
    ring_size: int
    # Whether the train step is XLA-compiled: XLA's CPU reductions are slow
    # (serial, unvectorised), so sums of squares are phrased as matmuls there.
    xla: bool = False


# Data accumulator layout: fixed head, then the label block.
D_BATCHES, D_SAMPLES, D_SUM, D_M2, D_Q, D_COUNT = range(6)
DATA_HEAD = 6
# Maxima: largest |input|, largest batch (samples in one replica's step).
M_MAX_ABS, M_BATCH = range(2)


def grad_layout(num_layers: int) -> dict[str, slice]:
    """Blocks of the gradient accumulator; each block has one entry per layer + global."""
    n = num_layers + 1
    return {
        "norm_sum": slice(0, n),  # sum over measured steps of the finite L2 norms
        "finite_steps": slice(n, 2 * n),  # measured steps whose norm was finite
        "nonfinite": slice(2 * n, 3 * n),  # NaN/Inf gradient entries
        "entries": slice(3 * n, 4 * n),  # gradient entries looked at
        "steps": slice(4 * n, 4 * n + 1),  # measured steps
    }


@dataclass
class Readout:
    """One epoch of accumulators, combined over replicas, as numpy."""

    grad: np.ndarray
    data: np.ndarray
    maxima: np.ndarray
    replicas: int


class GraphRecorder:
    """Owns the accumulator variables; builds the ops that feed them."""

    def __init__(self, tf: Any, keras: Any, plan: RecorderPlan, strategy: Any, optimizer: Any):
        self._tf = tf
        self._keras = keras
        self.plan = plan
        self._strategy = strategy
        self._loss_scale = _dynamic_loss_scale(optimizer)
        layers = plan.num_layers
        label_width = plan.label.width if plan.label else 0
        # Per input leaf, [features, 2]: a column of ones (the sum) and fixed
        # pseudo-random weights (a weighted sum tells apart batches whose sums agree).
        self._reducers = [
            _input_reducer(leaf.per_sample_size, index) for index, leaf in enumerate(plan.x_leaves)
        ]
        with strategy.scope():
            self.grad_acc = self._variable(np.zeros(4 * (layers + 1) + 1), "grad_acc")
            self.step_in_epoch = self._variable(np.int64(0), "step_in_epoch")
            self.data_acc = self._variable(np.zeros(DATA_HEAD + label_width), "data_acc")
            self.maxima = self._variable(np.zeros(2, np.float32), "maxima")
            self.ring = self._variable(np.zeros((plan.ring_size, 3)), "fingerprints")
            self.ring_index = self._variable(np.int64(0), "fingerprint_count")
            self.probe_vars = []
            self.probe_capacity = _probe_capacity(plan)
            if self.probe_capacity > 0:
                for leaf in plan.x_leaves:
                    # One spare row at the end takes the writes past the capacity.
                    shape = (self.probe_capacity + 1,) + tuple(leaf.shape)
                    self.probe_vars.append(
                        self._variable(np.zeros(shape, leaf.dtype.as_numpy_dtype), "probe")
                    )
            self.probe_count = self._variable(np.int32(0), "probe_count")
            self.batch_loss = None
            self.batch_grad = None
            if plan.batch_logging:
                self.batch_loss = self._variable(np.float32(np.nan), "batch_loss")
                # Last measured global norm and the in-epoch step it was measured at.
                self.batch_grad = self._variable(np.array([np.nan, -1.0], np.float32), "batch_grad")
        self._drained = [0] * self.replicas

    @property
    def replicas(self) -> int:
        return int(self._strategy.num_replicas_in_sync)

    def _variable(self, initial: np.ndarray, name: str) -> Any:
        tf = self._tf
        return tf.Variable(
            initial,
            trainable=False,
            name=f"tb_stagnation_{name}",
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM,
        )

    # ------------------------------------------------------------------ graph side

    def record_gradients(self, grads: list, variables: list) -> None:
        """Add one step's per-layer gradient norms (every `gradient_freq` steps)."""
        tf = self._tf
        plan = self.plan
        layers = plan.num_layers
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        step = self.step_in_epoch.read_value()
        if not pairs:
            self.step_in_epoch.assign_add(1)
            return
        # Segment `layers` collects variables no layer owns; the global entry
        # (index `layers` of every block) is the sum over all variables.
        segments = np.array([plan.layer_of_variable.get(id(v), layers) for _, v in pairs], np.int32)
        present = np.zeros(layers + 1, np.float32)
        entries = np.zeros(layers + 1, np.float32)
        for (_, variable), segment in zip(pairs, segments):
            size = float(math.prod(int(d) for d in variable.shape))
            entries[layers] += size
            present[layers] = 1.0
            if segment < layers:
                entries[segment] += size
                present[segment] = 1.0
        values = [g.values if isinstance(g, tf.IndexedSlices) else g for g, _ in pairs]

        def measure() -> Any:
            squares = tf.stack([self._sum_of_squares(v) for v in values])
            if self._loss_scale is not None:
                squares = squares / tf.square(tf.cast(self._loss_scale, tf.float32))
            if self.replicas > 1:
                # Keras scales each replica's loss by 1/replicas before the
                # gradient; undo it: the norm is that of the replica's batch.
                squares = squares * float(self.replicas**2)
            per_layer = tf.math.unsorted_segment_sum(squares, segments, layers + 1)[:layers]
            total = tf.reduce_sum(squares)
            norms = tf.sqrt(tf.concat([per_layer, tf.reshape(total, [1])], 0))
            finite = tf.cast(tf.math.is_finite(norms), tf.float32) * present
            safe_norms = tf.where(finite > 0, norms, tf.zeros_like(norms))

            def count_nonfinite() -> Any:
                counts = tf.stack(
                    [
                        tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(v)), tf.float32))
                        for v in values
                    ]
                )
                per = tf.math.unsorted_segment_sum(counts, segments, layers + 1)[:layers]
                return tf.concat([per, tf.reshape(tf.reduce_sum(counts), [1])], 0)

            # Counting NaN/Inf entries costs a pass over every gradient; a
            # finite total norm proves there are none, so it runs only then.
            nonfinite = tf.cond(
                tf.math.is_finite(total),
                lambda: tf.zeros([layers + 1], tf.float32),
                count_nonfinite,
            )
            update = tf.concat(
                [safe_norms, finite, nonfinite, tf.constant(entries), tf.ones([1])], 0
            )
            self.grad_acc.assign_add(tf.cast(update, tf.float64))
            if self.batch_grad is not None:
                self.batch_grad.assign(tf.stack([norms[layers], tf.cast(step, tf.float32)]))
            return tf.constant(0)

        if plan.gradient_freq <= 1:
            measure()
        else:
            tf.cond(tf.equal(step % plan.gradient_freq, 0), measure, lambda: tf.constant(0))
        self.step_in_epoch.assign_add(1)

    def _sum_of_squares(self, value: Any) -> Any:
        tf = self._tf
        value = tf.cast(value, tf.float32)
        if not self.plan.xla:
            return 2.0 * tf.nn.l2_loss(value)  # Eigen's multithreaded kernel
        size = value.shape.num_elements()
        width = _matmul_width(size)
        if width is None:
            return tf.reduce_sum(tf.square(value))
        # XLA on CPU hands dots to Eigen but emits reductions as serial loops:
        # for a 1M-entry gradient the matmul form is about 5x faster.
        rows = tf.reshape(tf.square(value), [-1, width])
        return tf.reduce_sum(tf.matmul(rows, tf.ones([width, 1], tf.float32)))

    def record_data(self, x: Any, y: Any, y_pred: Any, loss: Any) -> None:
        """Add one step's input, label and fingerprint statistics; fill the probe."""
        tf = self._tf
        tree = self._keras.tree
        plan = self.plan
        # Dense numeric tensors only: ragged, sparse and string inputs are skipped.
        leaves = [
            leaf
            for leaf in tree.flatten(x)
            if isinstance(leaf, tf.Tensor)
            and (leaf.dtype.is_floating or leaf.dtype.is_integer or leaf.dtype.is_bool)
        ]
        if not leaves:
            return
        f64 = tf.float64
        batch = tf.shape(leaves[0])[0]
        total = tf.constant(0.0, f64)
        m2 = tf.constant(0.0, f64)
        q = tf.constant(0.0, f64)
        count = tf.constant(0.0, f64)
        weighted = tf.constant(0.0, f64)
        max_abs = tf.constant(0.0, tf.float32)
        for index, leaf in enumerate(leaves):
            values = tf.cast(leaf, tf.float32)
            reducer = self._reducers[index] if index < len(self._reducers) else None
            per_sample = _static_per_sample(leaf)
            if reducer is not None and per_sample == reducer.shape[0]:
                # Sum and weighted sum in one matmul (fast with and without XLA).
                flat = tf.reshape(values, [-1, per_sample])
                sums = tf.reduce_sum(tf.matmul(flat, reducer), 0)
                leaf_sum, leaf_weighted = sums[0], sums[1]
                size = tf.cast(tf.size(flat), tf.float32)
                centered = tf.square(flat - leaf_sum / tf.maximum(size, 1.0))
                leaf_m2 = tf.reduce_sum(tf.matmul(centered, reducer[:, :1]))
                weighted += tf.cast(leaf_weighted, f64)
            else:
                size = tf.cast(tf.size(values), tf.float32)
                leaf_sum = tf.reduce_sum(values)
                leaf_m2 = tf.reduce_sum(tf.square(values - leaf_sum / tf.maximum(size, 1.0)))
            # Centered within the batch in float32 (accurate); the between-batch
            # part is recombined on the host in float64 (Chan et al.).
            total += tf.cast(leaf_sum, f64)
            m2 += tf.cast(leaf_m2, f64)
            q += tf.cast(tf.square(leaf_sum) / tf.maximum(size, 1.0), f64)
            count += tf.cast(size, f64)
            max_abs = tf.maximum(max_abs, tf.reduce_max(tf.abs(values)))

        label_block = self._label_block(y, y_pred)
        head = tf.stack([tf.constant(1.0, f64), tf.cast(batch, f64), total, m2, q, count])
        update = head if label_block is None else tf.concat([head, label_block], 0)
        fingerprint = tf.stack([total, m2, weighted])
        ring_position = tf.math.floormod(self.ring_index.read_value(), plan.ring_size)

        # All reads and computations above, all writes below: a trace-time
        # failure above leaves no half-written state behind.
        self.data_acc.assign_add(update)
        self.maxima.assign(
            tf.maximum(self.maxima.read_value(), tf.stack([max_abs, tf.cast(batch, tf.float32)]))
        )
        _scatter_update(
            tf, self.ring, tf.reshape(ring_position, [1, 1]), tf.reshape(fingerprint, [1, 3])
        )
        self.ring_index.assign_add(1)
        if self.probe_vars and self._probe_shapes_match(leaves):
            self._fill_probe(leaves, batch)
        if self.batch_loss is not None and loss is not None:
            from keras.src.losses.loss import unscale_loss_for_distribution

            self.batch_loss.assign(
                tf.cast(unscale_loss_for_distribution(tf.reduce_sum(loss)), tf.float32)
            )

    def _label_block(self, y: Any, y_pred: Any) -> Any:
        """The label part of the data update, or None when labels do not apply."""
        tf = self._tf
        label = self.plan.label
        if label is None:
            return None
        target = select_target(y, label.output_index, list(label.output_names), self._keras)
        if not isinstance(target, tf.Tensor):
            return None
        f32 = tf.float32
        if label.task == TASK_CLASSIFICATION:
            classes = int(label.num_classes or 0)
            if classes < 1:
                return None
            if label.sparse:
                ids = tf.reshape(target, [-1])
                if ids.dtype.is_floating:
                    ids = tf.round(ids)
                ids = tf.cast(ids, tf.int32)
                # Out-of-range ids go to a spare segment: an id >= num_segments
                # is a run-time error on CPU.
                ids = tf.where((ids >= 0) & (ids < classes), ids, classes)
                counts = tf.math.unsorted_segment_sum(tf.ones_like(ids, f32), ids, classes + 1)
                counts = counts[:classes]
            else:
                if target.shape.rank is None or target.shape[-1] != classes:
                    return None
                counts = tf.reduce_sum(tf.reshape(tf.cast(target, f32), [-1, classes]), 0)
            return tf.cast(counts, tf.float64)
        if label.task == TASK_BINARY:
            flat = tf.reshape(tf.cast(target, f32), [-1])
            positives = tf.reduce_sum(tf.cast(flat >= 0.5, f32))
            size = tf.cast(tf.size(flat), f32)
            return tf.cast(tf.stack([size - positives, positives]), tf.float64)
        if label.task == TASK_REGRESSION:
            dims = label.dims
            per_sample = _static_per_sample(target)
            if dims > 1 and per_sample != dims:
                return None
            rows = tf.reshape(tf.cast(target, f32), [-1, dims])
            n = tf.cast(tf.shape(rows)[0], f32)
            sums = tf.reduce_sum(rows, 0)
            m2 = tf.reduce_sum(tf.square(rows - sums / tf.maximum(n, 1.0)), 0)
            q = tf.square(sums) / tf.maximum(n, 1.0)
            return tf.cast(tf.concat([tf.reshape(n, [1]), m2, q, sums], 0), tf.float64)
        return None

    def _probe_shapes_match(self, leaves: list) -> bool:
        if len(leaves) != len(self.probe_vars):
            return False
        for leaf, variable in zip(leaves, self.probe_vars):
            if leaf.shape.rank is None or tuple(leaf.shape[1:]) != tuple(variable.shape[1:]):
                return False
            if leaf.dtype != variable.dtype:
                return False
        return True

    def _fill_probe(self, leaves: list, batch: Any) -> None:
        tf = self._tf
        capacity = self.probe_capacity

        def fill() -> Any:
            start = self.probe_count.read_value()
            # Rows past the capacity all land in the spare last row.
            rows = tf.minimum(start + tf.range(batch, dtype=tf.int32), capacity)
            for leaf, variable in zip(leaves, self.probe_vars):
                _scatter_update(tf, variable, tf.reshape(rows, [-1, 1]), leaf)
            self.probe_count.assign(tf.minimum(start + tf.cast(batch, tf.int32), capacity))
            return tf.constant(0)

        tf.cond(self.probe_count.read_value() < capacity, fill, lambda: tf.constant(0))

    # ------------------------------------------------------------------- host side

    def _locals(self, variable: Any) -> list:
        return list(self._strategy.experimental_local_results(variable))

    def read(self) -> Readout:
        """This epoch's accumulators, combined over replicas."""
        return Readout(
            grad=np.sum([v.numpy() for v in self._locals(self.grad_acc)], axis=0),
            data=np.sum([v.numpy() for v in self._locals(self.data_acc)], axis=0),
            maxima=np.max([v.numpy() for v in self._locals(self.maxima)], axis=0),
            replicas=self.replicas,
        )

    def reset_epoch(self) -> None:
        for variable in (
            self.grad_acc,
            self.step_in_epoch,
            self.data_acc,
            self.maxima,
            self.ring_index,
        ):
            for local in self._locals(variable):
                local.assign(np.zeros(local.shape, local.dtype.as_numpy_dtype))
        self._drained = [0] * self.replicas

    def drain_fingerprints(self) -> list[np.ndarray]:
        """Fingerprints written since the last drain, one array per replica.

        Rows older than one ring's length were overwritten; the callback drains
        at half the ring size, so that never happens for steps_per_execution
        below ring_size / 2.
        """
        size = self.plan.ring_size
        drained = []
        for replica, (ring, index) in enumerate(
            zip(self._locals(self.ring), self._locals(self.ring_index))
        ):
            end = int(index.numpy())
            start = max(self._drained[replica], end - size)
            if end > start:
                positions = np.arange(start, end) % size
                drained.append(ring.numpy()[positions])
            else:
                drained.append(np.zeros((0, 3)))
            self._drained[replica] = end
        return drained

    def read_probe(self) -> list[np.ndarray] | None:
        """The probe inputs captured so far (replica 0), one array per input leaf."""
        if not self.probe_vars:
            return None
        count = int(self._locals(self.probe_count)[0].numpy())
        if count <= 0:
            return None
        return [self._locals(v)[0].numpy()[:count] for v in self.probe_vars]

    def read_batch_values(self) -> tuple[float, float, int]:
        """(last loss, last measured global grad norm, in-epoch step it was measured at)."""
        loss = (
            float(self._locals(self.batch_loss)[0].numpy())
            if self.batch_loss is not None
            else math.nan
        )
        if self.batch_grad is None:
            return loss, math.nan, -1
        norm, step = self._locals(self.batch_grad)[0].numpy()
        return loss, float(norm), int(step)


def _scatter_update(tf: Any, variable: Any, indices: Any, updates: Any) -> Any:
    """`scatter_nd_update` that also works on a replica's ON_READ variable."""
    # A SyncOnReadVariable has no scatter ops; in replica context its local
    # copy is a plain variable that does.
    local = getattr(variable, "_get_on_device_or_primary", None)
    target = local() if callable(local) else variable
    try:
        return target.scatter_nd_update(indices, updates)
    except NotImplementedError:
        updated = tf.tensor_scatter_nd_update(variable.read_value(), indices, updates)
        return variable.assign(updated)


def _static_per_sample(tensor: Any) -> int | None:
    shape = tensor.shape
    if shape.rank is None or shape.rank == 0:
        return None
    dims = shape[1:]
    if any(d is None for d in dims):
        return None
    return int(math.prod(int(d) for d in dims))


def _input_reducer(per_sample: int | None, leaf_index: int) -> np.ndarray | None:
    """[features, 2]: ones, then fixed pseudo-random weights in [0.5, 1.5]."""
    if per_sample is None or per_sample < 1 or per_sample > MAX_FINGERPRINT_FEATURES:
        return None
    rng = np.random.default_rng(FINGERPRINT_SEED + leaf_index)
    weights = rng.uniform(0.5, 1.5, per_sample)
    return np.stack([np.ones(per_sample), weights], axis=1).astype(np.float32)


def _matmul_width(size: int | None) -> int | None:
    """Row width for the matmul form of a sum; None for small or odd-sized tensors."""
    if size is None or size < 4096:
        return None
    for width in (256, 128, 64, 32, 16, 8):
        if size % width == 0:
            return width
    return None


def _probe_capacity(plan: RecorderPlan) -> int:
    if plan.probe_size <= 0 or not plan.x_leaves:
        return 0
    bytes_per_sample = 0
    for leaf in plan.x_leaves:
        size = leaf.per_sample_size
        if size is None:
            return 0  # variable-length inputs cannot be stacked into a fixed probe
        bytes_per_sample += size * leaf.dtype.size
    if bytes_per_sample == 0:
        return 0
    return int(min(plan.probe_size, max(1, PROBE_BYTES_LIMIT // bytes_per_sample)))


def _dynamic_loss_scale(optimizer: Any) -> Any:
    """A LossScaleOptimizer receives scaled gradients; norms are divided by its scale."""
    if optimizer is not None and hasattr(optimizer, "inner_optimizer"):
        scale = getattr(optimizer, "dynamic_scale", None)
        return getattr(scale, "value", scale)  # the tf.Variable inside a Keras Variable
    return None
