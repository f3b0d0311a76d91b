"""Every private Keras 3 / TensorFlow attribute the package reads or replaces.

Each accessor names one private thing, says why we need it, the versions it
was checked against, and what the package does without it: every one of them
degrades to a fallback or to "that statistic is missing", never to an
exception in the user's `fit`. `probe_keras(model)` lists the missing ones
that cost this model something, for the callback's one warning at
`on_train_begin`.

"Checked" below means present and behaving as used, in the two venvs CI runs:
TensorFlow 2.16.2 with Keras 3.5.0 (the oldest pair setup.py accepts) and
TensorFlow 2.21.0 with Keras 3.15.1. Keras before 3.5 was looked at too (3.0.5,
3.1.1, 3.3.3, 3.4.1): where it differs the docstring says so. Nothing here
imports TensorFlow or Keras at module level: callers pass the objects (the CLI
and the tab import this package's siblings without TensorFlow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# ---------------------------------------------------------------- Model

COMPUTE_LOSS = "_compute_loss"


def model_compute_loss(model: Any) -> Callable | None:
    """`Model._compute_loss`: the private loss entry point of Keras's `train_step`.

    Why: the TF trainer's `train_step` calls `self._compute_loss(x, y, y_pred,
    sample_weight, training=True)`; wrapping it on the instance is how the
    callback sees each step's batch, labels, outputs and loss.
    Checked: Keras 3.5.0 and 3.15.1 (present since 3.4). Keras 3.0.5-3.3.3
    have none: their `train_step` calls the public `compute_loss` directly.
    Without it: the public `compute_loss` wrapper (hooks.py) sees the same
    call, so nothing is lost as long as `train_step` calls one of the two.
    """
    function = getattr(model, COMPUTE_LOSS, None)
    return function if callable(function) else None


def make_step_function(model: Any) -> Callable | None:
    """`Model._make_function(step)`: a train function built without assigning it.

    Why: a second `fit` on the same model in another thread must run Keras's
    clean train function, while our `fit` keeps its wrapper in
    `model.train_function`.
    Checked: Keras 3.15.1 (present); Keras 3.5.0 has none.
    Without it: None; hooks.py builds it the public way
    (`make_train_function(force=True)`) and puts its wrapper back.
    """
    make = getattr(model, "_make_function", None)
    if not callable(make):
        return None
    return make(model.train_step)


def all_layers_built(model: Any) -> bool:
    """Whether `Model._flatten_layers()` (the model and every nested layer) are built.

    Why: a subclassed model, or a Sequential with no Input, builds its layers
    only while tracing its first step; the callback builds them first so its
    ops see the weights.
    Checked: Keras 3.5.0 and 3.15.1.
    Without it: the model's own public `built` flag.
    """
    flatten = getattr(model, "_flatten_layers", None)
    if not callable(flatten):
        return bool(getattr(model, "built", False))
    return all(layer.built for layer in flatten())


def can_build_symbolically(model: Any) -> bool:
    """Whether `symbolic_build` can work on this Keras (see there)."""
    return callable(getattr(model, "_symbolic_build", None))


def symbolic_build(model: Any, data_batch: Any) -> bool:
    """`Model._symbolic_build(data_batch=...)`: build layers, metrics and optimizer
    from a batch spec, the way Keras itself does under a distribution strategy.

    Why: without a strategy Keras defers this to the first trace, after our
    recorder was planned from the (then empty) weights.
    Checked: Keras 3.5.0 and 3.15.1.
    Without it: False, nothing built; `probe_keras` has warned that a model
    not built before its first step has no per-layer statistics this run.
    """
    build = getattr(model, "_symbolic_build", None)
    if not callable(build):
        return False
    build(data_batch=data_batch)
    return True


def compiled_losses(model: Any) -> list[tuple[tuple, Any]] | None:
    """`Model._compile_loss._flat_losses`: (output path, loss object) per compiled loss.

    Why: which loss (and so which task: classification or regression) belongs
    to which output of a multi-output model, as `compile` resolved it.
    Checked: Keras 3.15.1. Keras 3.5.0's CompileLoss has no `_flat_losses`.
    Without it: None; model_info.py reads the user's `model.loss` (a loss, a
    list or a dict by output name), which is what `compile` was given.
    """
    flat = getattr(getattr(model, "_compile_loss", None), "_flat_losses", None)
    if not flat:
        return None
    return [(tuple(entry.path), entry.loss) for entry in flat]


def graph_inputs(model: Any) -> Any:
    """`Functional._inputs_struct` (a built Sequential: its `_functional`'s).

    Why: the probe pass (probe.py) builds a function from the model's symbolic
    inputs to each layer's output.
    Checked: Keras 3.5.0 and 3.15.1.
    Without it: None; there is no dead/saturated-unit probe for this model.
    """
    struct = getattr(model, "_inputs_struct", None)
    if struct is None:
        struct = getattr(getattr(model, "_functional", None), "_inputs_struct", None)
    return struct


def graph_outputs(model: Any) -> Any:
    """`Functional._outputs_struct` (a built Sequential: its `_functional`'s).

    Why: the nested structure of `y_pred`, so outputs are named as the user
    named them. Checked: Keras 3.5.0 and 3.15.1.
    Without it: None; callers use `compute_output_spec`, or skip the probe.
    """
    struct = getattr(model, "_outputs_struct", None)
    if struct is None:
        struct = getattr(getattr(model, "_functional", None), "_outputs_struct", None)
    return struct


# ---------------------------------------------------------------- Layers and tensors


def producing_operation(tensor: Any) -> Any:
    """`KerasTensor._keras_history.operation`: the layer that produced a symbolic tensor.

    Why: the activation and name of each output layer of a functional model.
    Checked: Keras 3.5.0 and 3.15.1.
    Without it: None; the output is named by position and its activation is
    unknown (the task is then judged from the loss alone).
    """
    return getattr(getattr(tensor, "_keras_history", None), "operation", None)


def own_variables(layer: Any, trainable_only: bool = False) -> list:
    """`Layer._trainable_variables` + `_non_trainable_variables`: the weights a
    layer owns itself, not those of its sublayers.

    Why: per-layer statistics must not count a nested model's weights twice.
    Checked: Keras 3.5.0 and 3.15.1.
    Without it: the layer's public weights minus those of its sublayers.
    """
    if hasattr(layer, "_trainable_variables"):
        variables = list(getattr(layer, "_trainable_variables", []) or [])
        if not trainable_only:
            variables += list(getattr(layer, "_non_trainable_variables", []) or [])
        return variables
    public = list(getattr(layer, "trainable_weights" if trainable_only else "weights", []) or [])
    nested = {
        id(variable)
        for sublayer in sublayers(layer)
        for variable in getattr(sublayer, "weights", []) or []
    }
    return [variable for variable in public if id(variable) not in nested]


def sublayers(layer: Any) -> list:
    """`Layer._layers`: a layer's direct sublayers, in the order they were set.

    Why: a pre-order walk keeps nested models in input-to-output order
    (`_flatten_layers` reverses sublayers). Checked: Keras 3.5.0 and 3.15.1.
    Without it: a model's public `layers` (empty for a plain layer).
    """
    found = getattr(layer, "_layers", None)
    if found is None:
        found = getattr(layer, "layers", None)
    return list(found or [])


def consumer_operations(layer: Any) -> list:
    """`Layer._outbound_nodes[*].operation`: the layers fed by this layer's output.

    Why: a Dense with no activation followed by an activation-only layer is
    measured after that layer (probe.py). Checked: Keras 3.5.0 and 3.15.1.
    Without it: []; such a layer is measured on its own output.
    """
    nodes = getattr(layer, "_outbound_nodes", None) or []
    return [node.operation for node in nodes]


def backing_variable(variable: Any) -> Any:
    """`keras.Variable._value`: the tf.Variable (or distributed variable) inside.

    Why: under a strategy the all-reduce hands over these, not the Keras
    variables, and gradients are matched to layers by identity.
    Checked: Keras 3.5.0 and 3.15.1 (TensorFlow backend).
    Without it: None; only the Keras variables are matched.
    """
    return getattr(variable, "_value", None)


# ---------------------------------------------------------------- Optimizers

ALL_REDUCE_SUM_GRADIENTS = "_all_reduce_sum_gradients"


def optimizer_trainable_variables(optimizer: Any) -> list:
    """`Optimizer._trainable_variables`: the variables the optimizer was built for.

    Why: `apply(grads)` may be called without variables (it then uses these).
    Checked: Keras 3.5.0 and 3.15.1. Without it: [] and that step's gradients
    are not recorded.
    """
    return list(getattr(optimizer, "_trainable_variables", []) or [])


def all_reduce_sum_gradients(optimizer: Any) -> Callable | None:
    """`Optimizer._all_reduce_sum_gradients` (TensorFlow backend): the cross-replica sum.

    Why: under a strategy with several replicas, `apply` sees one replica's
    share; after this sum the gradients are the whole step's, at no extra
    all-reduce. hooks.py wraps it on the instance, by `ALL_REDUCE_SUM_GRADIENTS`.
    Checked: Keras 3.5.0 and 3.15.1; Keras 3.0.5 has none.
    Without it: None; gradients are recorded in `apply`, per replica.
    """
    original = vars(optimizer).get(ALL_REDUCE_SUM_GRADIENTS) or getattr(
        optimizer, ALL_REDUCE_SUM_GRADIENTS, None
    )
    return original if callable(original) else None


def is_ftrl(optimizer: Any) -> bool:
    """Whether `optimizer` (or the one a LossScaleOptimizer wraps) is FTRL with
    the private slots `ftrl_slots` reads (`_get_variable_index`).

    Its slot variables exist only once built, so it is judged by its settings.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return all(
        hasattr(inner, name)
        for name in ("learning_rate_power", "l1_regularization_strength", "_get_variable_index")
    )


def ftrl_slots(optimizer: Any, variable: Any) -> tuple[Any, Any]:
    """`Ftrl._accumulators[i]` and `Ftrl._linears[i]` for one variable
    (`i = _get_variable_index(variable)`).

    Why: the LR range test rebases FTRL's `linear` so a new rate keeps the
    weights where they are (lr_range.py). Checked: Keras 3.5.0 and 3.15.1.
    Without them: AttributeError; `is_ftrl` is False then, and the sweep
    treats FTRL like any optimizer.
    """
    ftrl = getattr(optimizer, "inner_optimizer", optimizer)
    index = ftrl._get_variable_index(variable)
    return ftrl._accumulators[index], ftrl._linears[index]


# ---------------------------------------------------------------- TensorFlow


def per_replica_value_specs(spec: Any) -> list | None:
    """`PerReplicaSpec._value_specs`: one spec per replica of a distributed batch.

    Why: the first batch's spec under a strategy is a PerReplicaSpec; the
    recorder is planned from one replica's share. Checked: TensorFlow 2.16.2
    and 2.21.0. Without it: None; the spec is taken as it is.
    """
    values = getattr(spec, "_value_specs", None)
    return list(values) if values is not None else None


def replica_local_variable(variable: Any) -> Any:
    """`SyncOnReadVariable._get_on_device_or_primary()`: this replica's copy.

    Why: a SyncOnReadVariable has no scatter ops; its replica-local copy does.
    Checked: TensorFlow 2.16.2 and 2.21.0.
    Without it: the variable itself (graph_recorder.py then falls back to
    `tensor_scatter_nd_update` + `assign`).
    """
    local = getattr(variable, "_get_on_device_or_primary", None)
    return local() if callable(local) else variable


def multi_worker_count(strategy: Any) -> int:
    """`StrategyExtended._in_multi_worker_mode()` and `._num_workers`.

    Why: under MultiWorkerMirroredStrategy only the chief analyses the run, and
    `stop_on_stall` must be declined (workers stop together). Checked:
    TensorFlow 2.16.2 and 2.21.0 (`_num_workers` exists on the multi-worker
    extended only). Without it: 1 (treated as a single process).
    """
    extended = getattr(strategy, "extended", None)
    in_multi_worker_mode = getattr(extended, "_in_multi_worker_mode", None)
    if not callable(in_multi_worker_mode) or not in_multi_worker_mode():
        return 1
    return int(getattr(extended, "_num_workers", 1) or 1)


def quiet_retracing_warning(function: Any) -> None:
    """Sets `tf.function`'s `_omit_frequent_tracing_warning`.

    Why: one probe function and one weight-snapshot pair per fit are by
    design, not the retracing loop TensorFlow's warning suspects.
    Checked: TensorFlow 2.16.2 and 2.21.0.
    Without it: nothing is set; TensorFlow may log its warning.
    """
    if hasattr(function, "_omit_frequent_tracing_warning"):
        function._omit_frequent_tracing_warning = True


def unscale_loss_for_distribution(value: Any) -> Any:
    """`keras.src.losses.loss.unscale_loss_for_distribution`: undo Keras's
    1/replicas scaling of the loss under a strategy.

    Why: the per-batch loss we log must be the loss Keras reports.
    Checked: Keras 3.15.1. Keras 3.5.0 has none, and does not scale the loss
    either. Without it: the value as it is.
    """
    try:
        from keras.src.losses.loss import unscale_loss_for_distribution as unscale
    except ImportError:
        return value
    return unscale(value)


def keras_print() -> Callable[[str], Any]:
    """`keras.src.utils.io_utils.print_msg`: prints as Keras's own callbacks do
    (stdout, or absl logging when Keras is told to).

    Checked: Keras 3.5.0 and 3.15.1. Without it: the builtin `print`.
    """
    try:
        from keras.src.utils.io_utils import print_msg
    except ImportError:
        return print
    return print_msg


# ---------------------------------------------------------------- public, but newer


def flatten_with_path(keras: Any, structure: Any) -> list[tuple[tuple, Any]]:
    """`keras.tree.flatten_with_path`: (path, leaf) pairs, in `keras.tree.flatten` order.

    Public, but only after Keras 3.5 (3.5.0 has none); for older Keras the
    same walk over dicts (sorted keys), lists and tuples, which are the
    structures a model's outputs take.
    """
    tree = keras.tree
    if hasattr(tree, "flatten_with_path"):
        return [(tuple(path), leaf) for path, leaf in tree.flatten_with_path(structure)]
    pairs: list[tuple[tuple, Any]] = []

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, dict):
            for key in sorted(node):
                walk(node[key], path + (key,))
        elif isinstance(node, (list, tuple)):
            for index, child in enumerate(node):
                walk(child, path + (index,))
        else:
            pairs.append((path, node))

    walk(structure, ())
    return pairs


# ---------------------------------------------------------------- probe


@dataclass(frozen=True)
class MissingPrivate:
    """One private attribute this Keras lacks, and what the run loses by it."""

    attribute: str
    consequence: str


def probe_keras(model: Any, replicas: int = 1) -> list[MissingPrivate]:
    """The private attributes the callback needs for `model` that this Keras lacks.

    Only those whose absence costs this run something are listed: one with a
    complete public fallback (`_compute_loss` beside `compute_loss`,
    `_make_function`) is not. `replicas` is the strategy's replica count.
    """
    missing: list[MissingPrivate] = []
    if model_compute_loss(model) is None and not callable(getattr(model, "compute_loss", None)):
        missing.append(
            MissingPrivate(
                "Model._compute_loss",
                "batch, label, output and loss statistics are off for this run",
            )
        )
    if not can_build_symbolically(model) and not all_layers_built(model):
        missing.append(
            MissingPrivate(
                "Model._symbolic_build",
                "this model is built only by its first step, so it has no per-layer "
                "gradient or weight statistics this run",
            )
        )
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if replicas > 1 and all_reduce_sum_gradients(inner) is None:
            missing.append(
                MissingPrivate(
                    f"Optimizer.{ALL_REDUCE_SUM_GRADIENTS}",
                    "gradient statistics are those of one replica's share of each step",
                )
            )
        if not hasattr(inner, "_trainable_variables"):
            missing.append(
                MissingPrivate(
                    "Optimizer._trainable_variables",
                    "gradients applied without their variables are not recorded",
                )
            )
    return missing


def missing_warning(missing: list[MissingPrivate], keras_version: str) -> str:
    """The one warning for everything `probe_keras` found missing."""
    parts = [f"`{item.attribute}`: {item.consequence}" for item in missing]
    return (
        f"StagnationCallback: Keras {keras_version} changed "
        + "; ".join(parts)
        + ". Training is not affected."
    )


def conds_may_stay_unlowered(keras: Any, model: Any) -> bool:
    """Whether `unlowered_cond` is safe in this model's train function.

    Not when one call of the train function can fail after some of its steps
    ran: Keras before 3.7 unrolls `steps_per_execution` steps that each call
    `next(iterator)`, so the last call of an epoch whose step count is not a
    multiple raises OutOfRange mid-call, and TensorFlow cancels the ops still
    running. A functional `If` runs its branch asynchronously and was then
    cancelled: on Keras 3.5 with `steps_per_execution=2` and 7 steps an
    epoch, each of 4 two-epoch fits lost one or two of our measured steps
    and one or two of Keras's optimizer steps; with lowered conds none of 4
    lost any.
    From 3.7 the steps run in a while loop over `get_next_as_optional`,
    which ends without an error.
    Checked: Keras 3.5.0 (unrolled) and 3.7.0, 3.15.1 (while loop).
    """
    try:
        if int(getattr(model, "steps_per_execution", 1) or 1) <= 1:
            return True
        version = str(getattr(keras, "__version__", "0"))
        major, minor = (int(part) for part in version.split(".")[:2])
    except (TypeError, ValueError):
        return False  # unknown: TensorFlow's default lowering
    return (major, minor) >= (3, 7)


def step_cond(tf: Any, unlowered: bool) -> Callable:
    """`tf.cond`, or `unlowered_cond` when `unlowered` (see `conds_may_stay_unlowered`)."""
    if not unlowered:
        return tf.cond
    return lambda pred, true_fn, false_fn: unlowered_cond(tf, pred, true_fn, false_fn)


def unlowered_cond(tf: Any, pred: Any, true_fn: Callable, false_fn: Callable) -> Any:
    """`tf.cond`, with the `If` op it builds marked `_lower_using_switch_merge=False`.

    Why: outside XLA, TensorFlow lowers a cond in a `tf.function` to one
    Switch op per input and runs every op of the branch not taken as a dead
    node, on every step. Our per-step conds guard work that runs on few
    steps (the gradient pass every 32nd, the probe until it is full) and
    their branches are tens of ops: kept as one functional `If`, a step
    that skips them runs one op and a call of the small branch. On a
    10-layer Dense stack (a 1.4 ms step) the step's overhead fell from
    1.09-1.16x to 1.07-1.08x (paired CPU, three A/B runs each). XLA never
    lowers a cond, so nothing changes under XLA. Callers ask
    `conds_may_stay_unlowered` first.
    Checked: TensorFlow 2.16.2 and 2.21.0 (`Operation._set_attr`, and the
    attribute read by its LowerFunctionalOpsPass).
    Without it: a plain `tf.cond` (lowered, as TensorFlow does by default).
    """
    graph = tf.compat.v1.get_default_graph()
    known = len(graph.get_operations()) if not tf.executing_eagerly() else None
    result = tf.cond(pred, true_fn, false_fn)
    if known is None:
        return result
    try:
        from tensorflow.core.framework import attr_value_pb2
    except ImportError:
        return result
    for operation in graph.get_operations()[known:]:
        if operation.type in ("If", "StatelessIf") and hasattr(operation, "_set_attr"):
            operation._set_attr("_lower_using_switch_merge", attr_value_pb2.AttrValue(b=False))
    return result
