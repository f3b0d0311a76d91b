"""What the callback knows about a model: its layers, its outputs, the task, the card.

Everything here runs on the host, once per `fit`, and only reads the model.

Layers: every layer that owns weights directly, nested models flattened depth
first (input to output for Sequential and functional models, attribute order
for subclassed ones). Per layer the callback follows the variables the layer
*trains when trainable* (Keras's `layer._trainable_variables`): a frozen
layer's kernel is kept, so its update ratio shows 0, while BatchNormalization's
moving statistics, which change without being trained, are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tb_stagnation.analysis.series import finite_or_none
from tb_stagnation.compat import keras as compat_keras

# The loss taxonomy lives in tb_stagnation.losses; these names stay importable
# from here for the callback's modules.
from tb_stagnation.losses import (  # noqa: F401
    CLASS_TASKS,
    TASK_BINARY,
    TASK_CLASSIFICATION,
    TASK_REGRESSION,
    TASK_UNKNOWN,
    infer_task,
    loss_name_and_logits,
)
from tb_stagnation.summary import metadata

# Activation layers, whose type names the activation they apply.
_ACTIVATION_LAYER_TYPES = {
    "ReLU": "relu",
    "Softmax": "softmax",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "PReLU": "prelu",
}
_ACTIVATION_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


@dataclass
class LayerInfo:
    """One weight-owning layer, in model-card order."""

    name: str
    type: str
    activation: str | None
    trainable: bool
    params: int
    trainable_params: int
    # The variables the layer trains when trainable; see the module docstring.
    variables: list = field(repr=False)
    layer: Any = field(repr=False)


@dataclass
class OutputInfo:
    """One model output, in the flattened order of `y_pred`."""

    name: str
    shape: list
    activation: str | None
    loss: str | None
    from_logits: bool
    task: str
    num_classes: int | None
    # True: integer class ids; False: one-hot or probabilities; None: decide from y.
    sparse_labels: bool | None = None


def activation_name(function: Any) -> str | None:
    """Keras's name of an activation function or callable, e.g. "relu"."""
    if function is None:
        return None
    name = getattr(function, "__name__", None) or type(function).__name__
    return _ACTIVATION_ALIASES.get(name, name)


def layer_activation(layer: Any, depth: int = 0) -> str | None:
    """The activation a layer applies to its output, or None if it is unknown.

    A nested model (the transfer-learning head `Sequential([...])`, a functional
    block) applies the activation of its own output layer. None is "unknown",
    never "linear": a subclassed `call` or a Lambda may apply anything.
    """
    by_type = _ACTIVATION_LAYER_TYPES.get(type(layer).__name__)
    if by_type is not None:
        return by_type
    if hasattr(layer, "activation"):
        return activation_name(layer.activation)
    inner = _output_layer_of(layer)
    if inner is not None and depth < 8:
        return layer_activation(inner, depth + 1)
    return None


def _output_layer_of(model: Any) -> Any:
    """The layer producing a nested Sequential/functional model's single output."""
    outputs = getattr(model, "outputs", None)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        operation = compat_keras.producing_operation(outputs[0])
        if operation is not None and operation is not model:
            return operation
    return None


def _own_weights(layer: Any) -> list:
    weights, seen = [], set()
    for variable in compat_keras.own_variables(layer):
        if id(variable) not in seen:
            seen.add(id(variable))
            weights.append(variable)
    return weights


def _size(variable: Any) -> int:
    return int(math.prod(int(d) for d in variable.shape))


def dropout_rates(model: Any) -> list[dict]:
    """Every dropout the model applies in training: Dropout-family layers (their
    `rate`) and recurrent layers' `dropout` / `recurrent_dropout`, depth first.
    They own no weights, so the `layers` list never shows them."""
    found: list[dict] = []
    seen: set[int] = set()

    def visit(layer: Any) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        for attribute in ("rate", "dropout", "recurrent_dropout"):
            if attribute == "rate" and "Dropout" not in type(layer).__name__:
                continue
            value = getattr(layer, attribute, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                found.append(
                    {
                        "name": str(layer.name),
                        "type": type(layer).__name__,
                        "kind": attribute,
                        "rate": float(value),
                    }
                )
        for sublayer in compat_keras.sublayers(layer):
            visit(sublayer)

    visit(model)
    return found


def weight_layers(model: Any) -> list[LayerInfo]:
    """The layers that own weights, depth first, in model-card order."""
    owners: list = []
    seen: set[int] = set()

    # Keras's own `_flatten_layers` reverses sublayer order (extendleft); a
    # pre-order walk keeps nested models in input-to-output order.
    def visit(layer: Any) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if _own_weights(layer):
            owners.append(layer)
        for sublayer in compat_keras.sublayers(layer):
            visit(sublayer)

    visit(model)
    names = [layer.name for layer in owners]
    infos = []
    for index, layer in enumerate(owners):
        name = layer.name
        if names.count(name) > 1:
            # Nested models reuse names ("dense" in two sub-models): the path is unique.
            name = getattr(layer, "path", None) or f"{name}_{index}"
        own = _own_weights(layer)
        infos.append(
            LayerInfo(
                name=str(name),
                type=type(layer).__name__,
                activation=layer_activation(layer),
                trainable=bool(getattr(layer, "trainable", True)),
                params=sum(_size(v) for v in own),
                trainable_params=sum(_size(v) for v in own if getattr(v, "trainable", False)),
                variables=compat_keras.own_variables(layer, trainable_only=True),
                layer=layer,
            )
        )
    return infos


def _output_structure(model: Any, x_spec: Any, keras: Any) -> Any:
    struct = compat_keras.graph_outputs(model)
    if struct is None and x_spec is not None:
        symbolic = keras.tree.map_structure(
            lambda spec: keras.KerasTensor(spec.shape, dtype=spec.dtype.name), x_spec
        )
        # Through `call`, not `__call__`: a model named like "_my_model" is no
        # valid root name scope for the graph `__call__` would open.
        struct = model.compute_output_spec(symbolic)
    return struct


def _losses_by_output(model: Any, keras: Any, struct: Any, names: list[str]) -> list:
    """The loss object of every flat output (None where there is none)."""
    count = len(names)
    losses: list = [None] * count
    flat_losses = compat_keras.compiled_losses(model)
    if flat_losses:
        indices = keras.tree.pack_sequence_as(struct, list(range(count)))
        for path, loss in flat_losses:
            index = _resolve_index(indices, path, names)
            if index is not None and losses[index] is None:
                losses[index] = loss
        return losses
    user_loss = getattr(model, "loss", None)
    if isinstance(user_loss, dict):
        return [user_loss.get(name) for name in names]
    if isinstance(user_loss, (list, tuple)):
        return list(user_loss)[:count] + [None] * max(0, count - len(user_loss))
    return [user_loss] * count


def _resolve_index(indices: Any, path: tuple, names: list[str]) -> int | None:
    if not path:
        return indices if isinstance(indices, int) else None
    try:
        node = indices
        for key in path:
            node = node[key]
        return node if isinstance(node, int) else None
    except (KeyError, IndexError, TypeError):
        # CompileLoss re-keys list outputs by output name when the loss is a dict.
        last = path[-1]
        if isinstance(last, str) and last in names:
            return names.index(last)
        return None


def describe_outputs(model: Any, keras: Any, x_spec: Any = None) -> list[OutputInfo]:
    """Every output in the flat order of `y_pred`, with its loss and task."""
    struct = _output_structure(model, x_spec, keras)
    if struct is None:
        return []
    paths_and_tensors = compat_keras.flatten_with_path(keras, struct)
    output_names = list(getattr(model, "output_names", None) or [])
    names, activations, shapes = [], [], []
    for index, (path, tensor) in enumerate(paths_and_tensors):
        layer = compat_keras.producing_operation(tensor)
        if path and isinstance(path[-1], str):
            name = path[-1]
        elif layer is not None:
            name = layer.name
        elif len(output_names) == len(paths_and_tensors):
            name = output_names[index]
        else:
            name = f"output_{index}"
        names.append(str(name))
        activations.append(layer_activation(layer) if layer is not None else None)
        shapes.append([None if d is None else int(d) for d in tensor.shape])
    losses = _losses_by_output(model, keras, struct, names)
    outputs = []
    for name, activation, shape, loss in zip(names, activations, shapes, losses):
        loss_name, from_logits = loss_name_and_logits(loss)
        width = shape[-1] if len(shape) >= 2 else 1
        task, num_classes, sparse = infer_task(activation, loss_name, width)
        outputs.append(
            OutputInfo(
                name=name,
                shape=shape,
                activation=activation,
                loss=loss_name,
                from_logits=from_logits,
                task=task,
                num_classes=num_classes,
                sparse_labels=sparse,
            )
        )
    return outputs


def stats_output_index(outputs: list[OutputInfo]) -> int | None:
    """The output the label and prediction statistics describe (FORMAT.md).

    The first classification output, else the first regression output.
    """
    for wanted in (CLASS_TASKS, (TASK_REGRESSION,)):
        for index, output in enumerate(outputs):
            if output.task in wanted:
                return index
    return None


def select_target(y: Any, index: int, names: list[str], keras: Any) -> Any:
    """The labels of flat output `index` inside the label structure `y`.

    Works on tensors and on specs alike; None when they cannot be matched.
    """
    if y is None:
        return None
    if not keras.tree.is_nested(y):
        return y if index == 0 else None
    if isinstance(y, dict):
        if index < len(names) and names[index] in y:
            return y[names[index]]
    flat = keras.tree.flatten(y)
    if len(flat) == len(names) and index < len(flat):
        return flat[index]
    return None


def optimizer_summary(optimizer: Any, learning_rate: float | None) -> dict:
    """Class and the settings a diagnosis looks at (clipping, momentum, decay)."""
    if optimizer is None:
        return {"class": None, "learning_rate": None}
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    summary: dict[str, Any] = {
        "class": type(inner).__name__,
        "learning_rate": finite_or_none(learning_rate),
    }
    if inner is not optimizer:
        summary["wrapper"] = type(optimizer).__name__
    try:
        config = inner.get_config()
    except Exception:  # a custom optimizer's get_config may be incomplete
        config = {}
    for key in (
        "momentum",
        "nesterov",
        "beta_1",
        "beta_2",
        "epsilon",
        "weight_decay",
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
        "gradient_accumulation_steps",
    ):
        value = config.get(key)
        if isinstance(value, bool) or value is None:
            if value is not None:
                summary[key] = value
        elif isinstance(value, (int, float)):
            summary[key] = finite_or_none(value)
    if isinstance(config.get("learning_rate"), dict):
        summary["learning_rate_schedule"] = config["learning_rate"].get("class_name")
    return summary


def build_model_card(
    model: Any,
    layers: list[LayerInfo],
    outputs: list[OutputInfo],
    stats_index: int | None,
    *,
    learning_rate: float | None,
    steps_per_epoch: int | None,
    batch_size: int | None,
    update_freq: Any,
    version: str,
    extra: dict | None = None,
) -> dict:
    """The `model_card` JSON object of FORMAT.md (plus `extra` fields)."""
    primary = outputs[stats_index] if stats_index is not None else (outputs[0] if outputs else None)
    first = outputs[0] if outputs else None
    return {
        "format_version": metadata.FORMAT_VERSION,
        "model_class": type(model).__name__,
        "loss": primary.loss if primary else _fallback_loss_name(model),
        "optimizer": optimizer_summary(getattr(model, "optimizer", None), learning_rate),
        "output_shape": first.shape if first else None,
        "output_activation": first.activation if first else None,
        "outputs": [
            {
                "name": o.name,
                "shape": o.shape,
                "activation": o.activation,
                "loss": o.loss,
                "from_logits": o.from_logits,
                "task": o.task,
                "num_classes": o.num_classes,
            }
            for o in outputs
        ],
        # The output whose labels and predictions the epoch statistics describe.
        "stats_output": primary.name if primary else None,
        "task": primary.task if primary else TASK_UNKNOWN,
        "num_classes": primary.num_classes if primary else None,
        "trainable_params": sum(_size(v) for v in model.trainable_weights),
        "non_trainable_params": sum(_size(v) for v in model.non_trainable_weights),
        "layers": [
            {
                "name": layer.name,
                "type": layer.type,
                "activation": layer.activation,
                "trainable": layer.trainable,
                "params": layer.params,
                "trainable_params": layer.trainable_params,
            }
            for layer in layers
        ],
        "dropout": _safe_dropout_rates(model),
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "update_freq": update_freq,
        "callback_version": version,
        **(extra or {}),
    }


def _safe_dropout_rates(model: Any) -> list[dict]:
    try:
        return dropout_rates(model)
    except Exception:  # an exotic layer must not cost the whole model card
        return []


def _fallback_loss_name(model: Any) -> str | None:
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple, dict)):
        return None  # per output: see "outputs"
    name, _ = loss_name_and_logits(loss)
    return name
