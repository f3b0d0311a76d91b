"""In-graph accumulators that the real training steps feed, and their host side.

`hooks.py` calls `record_data` from inside `Model._compute_loss` and
`record_gradients` from inside `optimizer.apply`, while Keras traces the train
function. Every step: input sums, label counts and a batch fingerprint (a
column sum, one small matmul and one segment sum), one `assign_add` to a
small float64 state vector, one write of the fingerprint (and, until it is
full, the probe): some twenty small ops, because on a fast step each op's
dispatch is what costs. Every `gradient_freq`-th step only (a `tf.cond`,
kept unlowered where that is safe: `compat_keras.unlowered_cond`): the
gradient norms and the input spread (std, max), the two passes over large
tensors, and the one statistic that is not a sum (the maxima) rewrite the
state. The optimizer gets the large gradients only after that cond
(`_released_after`), so its update can reuse their buffers. Nothing leaves
the device until the callback reads the state once per epoch (and the
fingerprint ring every `ring_size / 2` batches).

Every op added here must be unable to fail at run time: past the first call
(which `hooks.py` retries without us) a failing op would stop the user's
training. So label ids are clipped before `unsorted_segment_sum`, scatter
indices are bounded, shapes are checked at trace time and a mismatch skips
the statistic.

Under a `tf.distribute` strategy the variables are ON_READ: each replica adds
to its own copy without any cross-device sync, and the host combines the
copies this process holds (`strategy.experimental_local_results`): sums for
counts and sums, maximum for maxima, replica 0 for the probe and the batch
loss. Gradients are read after Keras's all-reduce (`gradients_all_reduced`,
see hooks.py): every replica then holds the same gradient, that of the whole
step, so replica 0 alone measures it. Under `MultiWorkerMirroredStrategy`
only the chief adds ops at all (distribution.py); its data statistics are
those of its own shard of every batch.

The state vector's fields are declared in state_fields.py (name, width,
reset and combine policy, decoder); the graph packs its updates by field name
(`StateLayout.pack`) and the host reads them by name (`Readout`, `BlockView`).
No module holds an offset.

How to add a logged statistic:

1. state_fields.py: declare its `Field` (name, width, reset policy) in the
   block whose combine policy fits (`SUM` for counts and sums, `MAX` for
   maxima), or a new `Block` (then add it to `Readout` and `read` below).
2. graph_recorder.py: compute it in `record_data` or `record_gradients` and
   add it, by name, to that block's `layout.pack(...)`: no new variable, and
   as few ops as it can on every step (this is every training step's hot path).
3. epoch_stats.py: decode it from `readout.<block>.<field>` into a tag's value.
4. summary/tags.py: the tag, in the section of its kind (scalar, per-layer).
5. summary/FORMAT.md: document the tag.
6. frontend/src/chartSpecs.ts: the chart that shows it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from tb_stagnation.callback.model_info import (
    TASK_BINARY,
    TASK_CLASSIFICATION,
    TASK_REGRESSION,
    select_target,
)
from tb_stagnation.callback.state_fields import BlockView, StateLayout
from tb_stagnation.compat import keras as compat_keras

# Regression targets wider than this are pooled into one "dimension" for the
# best-constant baseline (a slight overestimate of it), to bound the accumulator.
MAX_REGRESSION_DIMS = 4096
# Inputs wider than this are fingerprinted by their sums only.
MAX_FINGERPRINT_FEATURES = 1 << 20
# On measured steps, tensors of up to this many entries are stacked by shape
# and reduced together (and no stack is larger): see `_sums_of_squares`.
STACKED_SQUARES_MAX_ENTRIES = 1 << 16
# The probe never holds more than this many bytes of inputs; larger inputs get fewer samples.
PROBE_BYTES_LIMIT = 64 << 20
# The smallest gradients, up to this many bytes in all, reach the optimizer
# without waiting for the gradient pass (`_released_after`): at most about
# 1.5 times this much more peak memory, and no wait on deep stacks of small layers.
UNHELD_GRADIENT_BYTES = 8 << 20
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
    # Whether the per-step conds may stay one functional `If` (see
    # `compat_keras.conds_may_stay_unlowered`).
    unlowered_conds: bool = False


def layout_of(plan: RecorderPlan) -> StateLayout:
    """The state layout for `plan` (state_fields.py declares its fields)."""
    return StateLayout.for_shape(plan.num_layers, plan.label.width if plan.label else 0)


@dataclass
class Readout:
    """One epoch of accumulators, combined over replicas, as numpy, by field name.

    `readout.data.batches`, `readout.grad.norm_sum`, `readout.maxima.max_abs`:
    the blocks of state_fields.py that the host combines (SUM and MAX).
    """

    grad: BlockView
    data: BlockView
    maxima: BlockView
    replicas: int  # local copies the data block sums over (each counts every step)
    gradient_replicas: int = 1  # local copies the gradient block sums over


class GraphRecorder:
    """Owns the accumulator variables; builds the ops that feed them."""

    def __init__(
        self,
        tf: Any,
        keras: Any,
        plan: RecorderPlan,
        strategy: Any,
        optimizer: Any,
        gradients_all_reduced: bool = False,
    ):
        self._tf = tf
        self._keras = keras
        self.plan = plan
        self._strategy = strategy
        self._optimizer = optimizer
        self.gradients_all_reduced = bool(gradients_all_reduced)
        self.layout = layout_of(plan)
        self._cond = compat_keras.step_cond(tf, plan.unlowered_conds)
        # Per input leaf, [features, 3]: a column of ones (the sum) and two of
        # fixed pseudo-random weights: the sum and the two weighted sums are a
        # batch's fingerprint (order-free, and unlikely to agree by chance).
        self._reducers = [
            _input_reducer(leaf.per_sample_size, index) for index, leaf in enumerate(plan.x_leaves)
        ]
        self.probe_capacity = _probe_capacity(plan)
        with strategy.scope():
            self.state = accumulator_variable(tf, self.layout.initial(), "state")
            self.ring = accumulator_variable(tf, np.zeros((plan.ring_size, 3)), "fingerprints")
            self.probe_vars = []
            for leaf in plan.x_leaves if self.probe_capacity > 0 else ():
                # One spare row at the end takes the writes past the capacity.
                shape = (self.probe_capacity + 1,) + tuple(leaf.shape)
                self.probe_vars.append(
                    accumulator_variable(tf, np.zeros(shape, leaf.dtype.as_numpy_dtype), "probe")
                )
        # This process's copies: all replicas on one machine, fewer on a
        # worker of a multi-worker cluster.
        self.local_replicas = len(strategy.experimental_local_results(self.state))
        self._drained = [0] * self.local_replicas
        # Trace time, per thread (under a strategy each replica traces in a
        # thread of its own): the step's `_due` predicate and its graph.
        self._trace_local = threading.local()

    @property
    def replicas(self) -> int:
        """Replicas over every worker (each step's gradient averages over them)."""
        return int(self._strategy.num_replicas_in_sync)

    def _write_state(self, state: Any, **parts: Any) -> Any:
        """Assign `state` with the given blocks (state_fields.BLOCKS names) replaced."""
        layout = self.layout
        return self.state.assign(self._whole_state(parts, lambda name: state[layout.span(name)]))

    def _add_to_state(self, **parts: Any) -> None:
        """Add the given blocks to the state (the others add nothing): one `assign_add`."""
        tf = self._tf
        layout = self.layout

        def zeros(name: str) -> Any:
            return tf.zeros([layout.width(name)], tf.float64)

        self.state.assign_add(self._whole_state(parts, zeros))

    def _whole_state(self, parts: dict, fill: Any) -> Any:
        """A state-sized vector: `parts` by block name, `fill(name)` for the other blocks."""
        names = [block.name for block in self.layout.blocks]
        unknown = set(parts) - set(names)
        if unknown:
            raise ValueError(f"no state blocks {sorted(unknown)}")
        return self._tf.concat([parts[n] if n in parts else fill(n) for n in names], axis=0)

    # ------------------------------------------------------------------ graph side

    def record_gradients(self, grads: list, variables: list) -> list:
        """Add one step's per-layer gradient norms, every `gradient_freq` steps.

        The step count comes from `record_data`, which runs earlier in the same
        step; a train step that never computes a loss through Keras leaves it
        at 0, and then every step is measured. On the other steps nothing but
        one branch is added: the state is only written when measured.

        Returns the gradients the optimizer is to apply: `grads`, the large
        ones passed on only once the measurement is done with them
        (`_released_after`).
        """
        tf = self._tf
        plan = self.plan
        layout = self.layout
        layers = plan.num_layers
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        here = self._measures_gradients_here()
        if not pairs or here is False:
            return grads
        # The global entry (index `layers` of every block) sums every variable,
        # including those no layer owns.
        segments = [plan.layer_of_variable.get(id(v), layers) for _, v in pairs]
        present = np.zeros(layers + 1)
        entries = np.zeros(layers + 1)
        for (_, variable), segment in zip(pairs, segments):
            size = float(math.prod(int(d) for d in variable.shape))
            entries[layers] += size
            present[layers] = 1.0
            if segment < layers:
                entries[segment] += size
                present[segment] = 1.0
        values = [g.values if isinstance(g, tf.IndexedSlices) else g for g, _ in pairs]
        # A complex gradient's norm is that of its magnitudes (|z|^2 counts
        # both parts); a cast to float would drop the imaginary part.
        values = [tf.math.abs(v) if v.dtype.is_complex else v for v in values]
        # Which entries of `squares` belong to each layer, fixed at trace time:
        # Python-side grouping becomes a few fused scalar adds (a segment sum
        # would be an XLA scatter).
        groups = [[i for i, seg in enumerate(segments) if seg == layer] for layer in range(layers)]
        scale = self._gradient_scale()

        def measure() -> Any:
            state = self.state.read_value()
            squares = self._sums_of_squares(values)
            if scale is not None:
                squares = squares * scale
            total = tf.reduce_sum(squares)
            norms = tf.sqrt(tf.concat([self._layer_sums(squares, groups), [total]], 0))
            finite = tf.cast(tf.math.is_finite(norms), tf.float32) * present.astype(np.float32)
            safe_norms = tf.where(finite > 0, norms, tf.zeros_like(norms))

            def count_nonfinite() -> Any:
                counts = tf.stack(
                    [
                        tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(v)), tf.float32))
                        for v in values
                    ]
                )
                per_layer = self._layer_sums(counts, groups)
                return tf.concat([per_layer, tf.reshape(tf.reduce_sum(counts), [1])], 0)

            # Counting NaN/Inf entries costs a pass over every gradient; a
            # finite total norm proves there are none, so it runs only then.
            nonfinite = self._cond(
                tf.math.is_finite(total),
                lambda: tf.zeros([layers + 1], tf.float32),
                count_nonfinite,
            )
            update = layout.pack(
                tf,
                "grad",
                ("norm_sum", safe_norms),
                ("finite_steps", finite),
                ("nonfinite", nonfinite),
                ("entries", tf.constant(entries, tf.float32)),
                ("measured_steps", tf.ones([1])),
            )
            measured = tf.stack(
                [tf.cast(norms[layers], tf.float64), state[layout.index("step")] - 1.0]
            )
            batch = state[layout.span("batch")]
            written = self._write_state(
                state,
                grad=state[layout.span("grad")] + tf.cast(update, tf.float64),
                batch=layout.pack(
                    tf,
                    "batch",
                    ("last_loss", batch[:1]),
                    (("last_grad_norm", "last_grad_step"), measured),
                ),
            )
            with tf.control_dependencies([written]):
                return tf.constant(0)

        due = self._due_from_record_data()
        if due is None:
            # No `record_data` in this step's graph: the state's step counts
            # this step already when it did run, else it stays 0.
            step = self.state.read_value()[layout.index("step")]
            due = self._due(tf.maximum(step - 1.0, 0.0), keep=False)
        if here is not True:
            due = here if due is True else tf.logical_and(due, here)
        if due is True:
            done = measure()
        else:
            done = self._cond(due, measure, lambda: tf.constant(0))
        return self._released_after(done, grads)

    def _released_after(self, done: Any, grads: list) -> list:
        """`grads`, the large ones readable only once `done` (the step's measurement) has run.

        TensorFlow lets an op write its result into an input's buffer only
        when it is that buffer's last reader. Left to run in any order, the
        optimizer's update can run while our cond still holds every gradient,
        and then each of its element-wise ops allocates a gradient-sized
        buffer anew: a 23M-parameter MLP's fit (92 MB of gradients) peaked
        137 MB higher with the callback than without. Behind this barrier the
        update reads the gradients last: 18-79 MB higher, within the clean
        fit's own spread from one process to the next (2026-12-04).

        The barrier costs step time where gradients are many and small.
        The cond runs only once the last gradient exists, so behind it no
        update starts before the whole backward pass is done (the likely
        reason). With every gradient held against only the large ones
        (2026-12-05, each variant on models of its own against their clean
        step): a stack of 100 Dense(32) layers (200 gradients, 0.4 MB)
        +1.29 against +0.40 ms of an 11 ms step, and +0.93 against +0.69 ms
        of 8 ms in a second run (12 models each); of 300 layers +3.4
        against +2.2 ms of 31-33 ms (3 models each). So only the gradients
        beyond the smallest `UNHELD_GRADIENT_BYTES` wait: their copies are
        what costs memory. Sparse gradients (`IndexedSlices`) pass as they are.
        """
        tf = self._tf
        positions = _held_gradients(tf, grads)
        if not positions:
            return grads
        with tf.control_dependencies([done]):
            passed = tf.identity_n([grads[i] for i in positions])
        released = list(grads)
        for position, tensor in zip(positions, passed):
            released[position] = tensor
        return released

    def _due_from_record_data(self) -> Any:
        """This step's `_due` predicate if `record_data` made it in this graph or an outer one."""
        made = getattr(self._trace_local, "due", None)
        if made is None:
            return None
        graph = self._tf.compat.v1.get_default_graph()
        while graph is not None:
            if graph is made[0]:
                return made[1]
            # A cond branch (a LossScaleOptimizer applies in one) or a loop body.
            graph = getattr(graph, "outer_graph", None)
        return None

    def _measures_gradients_here(self) -> Any:
        """Whether this replica measures the gradients: True, False or a bool tensor.

        After the all-reduce every replica holds the same gradient: replica 0
        measures it, the others add no ops. The replica id is known at trace
        time under the mirrored strategies; where it is not, a run-time test.
        """
        tf = self._tf
        if not self.gradients_all_reduced or self.replicas <= 1:
            return True
        replica = getattr(tf.distribute.get_replica_context(), "replica_id_in_sync_group", 0)
        static = replica if isinstance(replica, int) else tf.get_static_value(replica)
        if static is None:
            return tf.equal(replica, 0)
        return int(static) == 0

    def _gradient_scale(self) -> float | Any | None:
        """Factor on squared norms: undo loss scaling (mixed precision, replicas).

        After the all-reduce there is nothing to undo: the inner optimizer
        receives unscaled gradients, and the sum of the replicas' 1/replicas
        shares is the gradient of the whole batch's mean loss.
        """
        tf = self._tf
        factor = None
        if self.gradients_all_reduced:
            return None
        # A LossScaleOptimizer receives scaled gradients. Looked up at trace
        # time: its scale variable only exists once the optimizer is built.
        optimizer = self._optimizer
        if optimizer is not None and hasattr(optimizer, "inner_optimizer"):
            dynamic = getattr(optimizer, "dynamic_scale", None)
            if dynamic is not None:
                dynamic = tf.cast(getattr(dynamic, "value", dynamic), tf.float32)
                factor = 1.0 / tf.square(dynamic)
        if self.replicas > 1:
            # Keras scales each replica's loss by 1/replicas before the
            # gradient; undo it: the norm is that of the replica's batch.
            replicas = float(self.replicas**2)
            factor = replicas if factor is None else factor * replicas
        return factor

    def _sums_of_squares(self, values: list) -> Any:
        """[len(values)] float32: each tensor's sum of squares.

        A measured step of a model with hundreds of small variables would
        otherwise be hundreds of tiny reductions, each costing its dispatch
        more than its work: small tensors of one shape are stacked and
        reduced together (in stacks of bounded size, so the copy stays
        small), the others reduced one by one.
        """
        tf = self._tf
        by_shape: dict = {}
        singles = []
        for index, value in enumerate(values):
            size = value.shape.num_elements()
            if size is not None and size <= STACKED_SQUARES_MAX_ENTRIES:
                by_shape.setdefault(tuple(value.shape), []).append(index)
            else:
                singles.append(index)
        parts = []
        order: list[int] = []
        for shape, indices in by_shape.items():
            per_stack = max(1, STACKED_SQUARES_MAX_ENTRIES // max(1, math.prod(shape)))
            for start in range(0, len(indices), per_stack):
                chunk = indices[start : start + per_stack]
                if len(chunk) == 1:
                    singles.append(chunk[0])
                    continue
                stacked = tf.reshape(
                    tf.stack([tf.cast(values[i], tf.float32) for i in chunk]),
                    [len(chunk), math.prod(shape)],
                )
                parts.append(tf.reduce_sum(tf.square(stacked), 1))
                order.extend(chunk)
        if singles:
            parts.append(tf.stack([self._sum_of_squares(values[i]) for i in singles]))
            order.extend(singles)
        squares = parts[0] if len(parts) == 1 else tf.concat(parts, 0)
        if order == list(range(len(values))):
            return squares
        # Back to the order of `values`.
        return tf.gather(squares, np.argsort(np.asarray(order)).astype(np.int32))

    def _layer_sums(self, squares: Any, groups: list) -> Any:
        """[len(groups)]: the sum of `squares` over each layer's variables."""
        tf = self._tf
        if self.plan.xla or not groups:
            # Python-side grouping: XLA fuses the adds (a segment sum would be a scatter).
            return _group_sums(tf, squares, groups)
        segments = np.full(int(squares.shape[0]), len(groups), np.int32)
        for layer, members in enumerate(groups):
            segments[members] = layer
        # One op for every layer; variables of no layer go to a spare segment.
        return tf.math.unsorted_segment_sum(squares, segments, len(groups) + 1)[:-1]

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
        """Add one step's input, label and fingerprint statistics; fill the probe.

        The hot path of every step, so it adds one state read, one
        `assign_add` of the step's additive statistics, and one fingerprint
        write; the state is rewritten only on measured steps (the spread and
        the maxima, inside the `tf.cond`).
        """
        tf = self._tf
        tree = self._keras.tree
        plan = self.plan
        layout = self.layout
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
        batch64 = tf.cast(batch, f64)
        counters = self.state.read_value()[layout.span("counters")]
        step = counters[layout.within["counters"]["step"]]  # steps before this one, this epoch
        probe_count = counters[layout.within["counters"]["probe_count"]]
        # Per leaf, float32 [3]: its sum and two weighted sums (the fingerprint).
        leaf_sums = []
        flats = []
        count = tf.constant(0.0, f64)
        for index, leaf in enumerate(leaves):
            values = tf.cast(leaf, tf.float32)
            reducer = self._reducers[index] if index < len(self._reducers) else None
            per_sample = _static_per_sample(leaf)
            if reducer is not None and per_sample == reducer.shape[0]:
                # The weights are per feature, so the batch is summed over
                # its rows first and the matmul is [1, features] x
                # [features, 3]. On a 64 x 784 batch (with one add over it,
                # 22 us alone) 31 us against 52 us for [batch, features] x
                # [features, 3]; 27 against 67 us under XLA.
                flat = tf.reshape(values, [-1, per_sample])
                column_sums = tf.reduce_sum(flat, 0, keepdims=True)
                sums = tf.reshape(tf.matmul(column_sums, reducer), [3])
                count += batch64 * float(reducer.shape[0])
            else:
                flat = values
                sums = tf.reduce_sum(values) * tf.constant([1.0, 0.0, 0.0])
                count += tf.cast(tf.size(values), f64)
            leaf_sums.append(sums)
            flats.append(flat)
        fingerprint = tf.cast(tf.add_n(leaf_sums) if len(leaf_sums) > 1 else leaf_sums[0], f64)

        def measure_spread() -> Any:
            # A second pass over the inputs: only on measured steps. Centered
            # within the batch in float32 (accurate); the between-batch part
            # is recombined on the host in float64 (Chan et al.).
            m2 = tf.constant(0.0, f64)
            q = tf.constant(0.0, f64)
            max_abs = tf.constant(0.0, tf.float32)
            for flat, sums in zip(flats, leaf_sums):
                size = tf.cast(tf.size(flat), tf.float32)
                mean = sums[0] / tf.maximum(size, 1.0)
                if flat.shape.rank == 2 and flat.shape[-1] is not None:
                    squares = tf.square(flat - mean)
                    ones = tf.ones([int(flat.shape[-1]), 1], tf.float32)
                    m2 += tf.cast(tf.reduce_sum(tf.matmul(squares, ones)), f64)
                else:
                    m2 += tf.cast(tf.reduce_sum(tf.square(flat - mean)), f64)
                q += tf.cast(tf.square(sums[0]) / tf.maximum(size, 1.0), f64)
                max_abs = tf.maximum(max_abs, tf.reduce_max(tf.abs(flat)))
            # The maxima are the only statistic that is not a sum: the state
            # is read and rewritten here, on measured steps only.
            state = self.state.read_value()
            maxima = tf.maximum(
                state[layout.span("maxima")],
                layout.pack(
                    tf,
                    "maxima",
                    (("max_abs", "largest_batch"), tf.stack([tf.cast(max_abs, f64), batch64])),
                ),
            )
            self._write_state(state, maxima=maxima)
            return tf.stack([fingerprint[0], m2, q, count])

        due = self._due(step)
        if due is True:
            spread = measure_spread()
        else:
            spread = self._cond(due, measure_spread, lambda: tf.zeros([4], f64))

        pieces: list[tuple[Any, Any]] = [
            (
                ("batches", "samples", "input_sum", "input_count"),
                tf.stack([tf.constant(1.0, f64), batch64, fingerprint[0], count]),
            ),
            (("spread_sum", "spread_m2", "spread_q", "spread_count"), spread),
        ]
        if layout.width("labels"):
            labels = self._label_block(y, y_pred)
            if labels is None:
                labels = tf.zeros([layout.width("labels")], f64)
            pieces.append(("labels", labels))
        if self.probe_vars and self._probe_shapes_match(leaves):
            probe_added = self._fill_probe(leaves, batch, probe_count) - probe_count
        else:
            probe_added = tf.constant(0.0, f64)
        self._add_to_state(
            data=layout.pack(tf, "data", *pieces),
            counters=layout.pack(
                tf,
                "counters",
                (("step", "ring_count"), tf.ones([2], f64)),
                ("probe_count", tf.reshape(probe_added, [1])),
            ),
        )
        if plan.batch_logging and loss is not None:
            last_loss = tf.cast(
                compat_keras.unscale_loss_for_distribution(tf.reduce_sum(loss)), f64
            )
            scatter_update(
                tf,
                self.state,
                tf.constant([[layout.index("last_loss")]]),
                tf.reshape(last_loss, [1]),
            )
        ring_position = tf.cast(tf.math.floormod(step, float(plan.ring_size)), tf.int32)
        scatter_update(
            tf, self.ring, tf.reshape(ring_position, [1, 1]), tf.reshape(fingerprint, [1, 3])
        )

    def _due(self, step: Any, keep: bool = True) -> Any:
        """Whether the step after `step` earlier ones is measured: True or a bool tensor.

        `record_data` keeps it for the step's graph, so `record_gradients`
        (later in the same step) tests the same predicate without reading the
        state again.
        """
        tf = self._tf
        if self.plan.gradient_freq <= 1:
            due: Any = True
        else:
            due = tf.equal(tf.math.floormod(step, float(self.plan.gradient_freq)), 0.0)
        if keep:
            self._trace_local.due = (tf.compat.v1.get_default_graph(), due)
        return due

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
                # Too large ids go to a spare segment (an id >= num_segments
                # is a run-time error on CPU); negative ids are dropped by
                # `unsorted_segment_sum` itself.
                ids = tf.minimum(ids, classes)
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

    def _fill_probe(self, leaves: list, batch: Any, count: Any) -> Any:
        """Copy this batch into the probe while it has room; the new row count."""
        tf = self._tf
        capacity = self.probe_capacity

        def fill() -> Any:
            start = tf.cast(count, tf.int32)
            # Rows past the capacity all land in the spare last row.
            rows = tf.minimum(start + tf.range(batch, dtype=tf.int32), capacity)
            for leaf, variable in zip(leaves, self.probe_vars):
                scatter_update(tf, variable, tf.reshape(rows, [-1, 1]), leaf)
            return tf.cast(tf.minimum(start + tf.cast(batch, tf.int32), capacity), tf.float64)

        return self._cond(count < float(capacity), fill, lambda: count)

    # ------------------------------------------------------------------- host side

    def _local_states(self) -> list[np.ndarray]:
        return [v.numpy() for v in self._strategy.experimental_local_results(self.state)]

    def read(self) -> Readout:
        """This epoch's accumulators, combined over replicas (one read per replica)."""
        states = self._local_states()
        layout = self.layout
        return Readout(
            grad=layout.combine("grad", states),
            data=layout.combine("data", states),
            maxima=layout.combine("maxima", states),
            replicas=len(states),
            gradient_replicas=1 if self.gradients_all_reduced else len(states),
        )

    def reset_epoch(self) -> None:
        for local in self._strategy.experimental_local_results(self.state):
            local.assign(self.layout.reset_epoch(local.numpy()))
        self._drained = [0] * self.local_replicas

    def drain_fingerprints(self) -> list[np.ndarray]:
        """Fingerprints written since the last drain, one array per replica.

        Rows older than one ring's length were overwritten; the callback drains
        at half the ring size, so that never happens for steps_per_execution
        below ring_size / 2.
        """
        size = self.plan.ring_size
        drained = []
        states = self._local_states()
        rings = self._strategy.experimental_local_results(self.ring)
        for replica, (state, ring) in enumerate(zip(states, rings)):
            end = int(state[self.layout.index("ring_count")])
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
        count = int(self._local_states()[0][self.layout.index("probe_count")])
        if count <= 0:
            return None
        return [
            self._strategy.experimental_local_results(v)[0].numpy()[:count] for v in self.probe_vars
        ]

    def read_batch_values(self) -> tuple[float, float, int]:
        """(last loss, last measured global grad norm, in-epoch step it was measured at)."""
        batch = self.layout.combine("batch", self._local_states())
        return float(batch.last_loss), float(batch.last_grad_norm), int(batch.last_grad_step)


def _held_gradients(tf: Any, grads: list) -> list[int]:
    """Positions of the dense gradients that wait for the gradient pass: all
    but the smallest, which together hold at most `UNHELD_GRADIENT_BYTES`."""
    sized = []
    for position, grad in enumerate(grads):
        if isinstance(grad, tf.Tensor):
            entries = grad.shape.num_elements()
            size = math.inf if entries is None else float(entries * grad.dtype.size)
            sized.append((size, position))
    unheld = 0.0
    held = []
    for size, position in sorted(sized):
        if unheld + size <= UNHELD_GRADIENT_BYTES:
            unheld += size
        else:
            held.append(position)
    return sorted(held)


def _group_sums(tf: Any, values: Any, groups: list) -> Any:
    """[len(groups)] float32: the sum of `values[i]` over each group's indices."""
    if not groups:
        return tf.zeros([0], values.dtype)
    zero = tf.zeros([], values.dtype)
    return tf.stack([tf.add_n([values[i] for i in group]) if group else zero for group in groups])


def accumulator_variable(tf: Any, initial: np.ndarray, name: str) -> Any:
    """One of our variables: untrained, ON_READ (each replica adds to its own copy)."""
    return tf.Variable(
        initial,
        trainable=False,
        name=f"tb_stagnation_{name}",
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.SUM,
    )


def scatter_update(tf: Any, variable: Any, indices: Any, updates: Any) -> Any:
    """`scatter_nd_update` that also works on a replica's ON_READ variable."""
    # A SyncOnReadVariable has no scatter ops; in replica context its local
    # copy is a plain variable that does.
    target = compat_keras.replica_local_variable(variable)
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
    """[features, 3]: ones, then two columns of fixed pseudo-random weights."""
    if per_sample is None or per_sample < 1 or per_sample > MAX_FINGERPRINT_FEATURES:
        return None
    rng = np.random.default_rng(FINGERPRINT_SEED + leaf_index)
    weights = rng.uniform(0.5, 1.5, (per_sample, 2))
    return np.concatenate([np.ones((per_sample, 1)), weights], axis=1).astype(np.float32)


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
