"""A model card (summary/FORMAT.md) from the model config Keras's own callback logs.

`keras.callbacks.TensorBoard(write_graph=True)`, its default, writes at step 0
of `train/` a blob (plugin `graph_keras_model`, tag `keras`) holding
`model.to_json()` for Sequential and functional models: every layer's class,
units, activation, initialisers, dropout rate and `trainable` flag, and, once
compiled, a `compile_config` with the optimizer (class and config), the loss
and the metrics. This module turns that JSON into the fields of our model card
that the static checks read, so a plain-Keras past run gets the same
`loss_output_mismatch`, `frozen_layers`, `dropout_too_high` and learning-rate
checks as a run logged by StagnationCallback.

What the config does not hold stays absent: parameter counts (they need the
input shapes), the labels, anything measured during training.

Pure Python; no TensorFlow.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tb_stagnation.losses import canonical_name, infer_task

# The card's `source` for a card built here: findings say their evidence
# comes from the logged Keras config.
CARD_SOURCE = "keras_config"

# Layer classes whose config holds nested layers (a Sequential head inside a
# functional model, a model used as a layer).
_CONTAINERS = ("Sequential", "Functional", "Model")
# Layer classes that apply an activation by their type.
_ACTIVATION_TYPES = {"ReLU": "relu", "Softmax": "softmax", "LeakyReLU": "leaky_relu", "ELU": "elu"}
# Nesting deeper than this is a hostile or broken config, not a model.
_MAX_DEPTH = 16


def _snake(name: str) -> str:
    """Keras class names to the snake_case names Keras strings use:
    "SparseCategoricalCrossentropy" -> "sparse_categorical_crossentropy"."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _config(obj: dict) -> dict:
    """`obj["config"]` when it is a dict, else an empty dict."""
    config = obj.get("config")
    return config if isinstance(config, dict) else {}


def _name_of(obj: Any) -> str | None:
    """A registered Keras object's name: "relu", or the class of a serialised one."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        config = obj.get("config")
        if (
            isinstance(config, dict)
            and isinstance(config.get("name"), str)
            and obj.get("class_name") in ("function", "Activation")
        ):
            return config["name"]
        if isinstance(obj.get("class_name"), str):
            return obj["class_name"]
    return None


def _activation(layer: dict) -> str | None:
    by_type = _ACTIVATION_TYPES.get(str(layer.get("class_name")))
    if by_type:
        return by_type
    config = _config(layer)
    name = _name_of(config.get("activation"))
    return name.lower() if isinstance(name, str) else None


def _flatten(layers: Any, frozen_above: bool, depth: int = 0) -> list[dict]:
    """Leaf layers in config order; a container's trainable=False freezes its leaves."""
    out: list[dict] = []
    if not isinstance(layers, list) or depth > _MAX_DEPTH:
        return out
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        config = _config(layer)
        frozen = frozen_above or config.get("trainable") is False
        if layer.get("class_name") in _CONTAINERS or isinstance(config.get("layers"), list):
            out.extend(_flatten(config.get("layers"), frozen, depth + 1))
            continue
        out.append({**layer, "_frozen": frozen})
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _optimizer(compile_config: dict) -> dict | None:
    optimizer = compile_config.get("optimizer")
    if isinstance(optimizer, str):
        return {"class": optimizer}
    if not isinstance(optimizer, dict):
        return None
    config = _config(optimizer)
    summary: dict[str, Any] = {"class": str(optimizer.get("class_name") or "")}
    rate = config.get("learning_rate")
    if isinstance(rate, dict):
        summary["learning_rate_schedule"] = rate.get("class_name")
        schedule = _config(rate)
        summary["learning_rate"] = _number(schedule.get("initial_learning_rate"))
    else:
        summary["learning_rate"] = _number(rate)
    for key in ("momentum", "clipnorm", "clipvalue", "global_clipnorm"):
        value = _number(config.get(key))
        if value is not None:
            summary[key] = value
    return summary


def _output_names(config: dict) -> list[str]:
    """A functional model's output layer names, in the model's output order:
    `output_layers` is ["name", 0, 0] for one output, a list or a dict of
    those for several."""
    entries = config.get("output_layers")
    if isinstance(entries, dict):
        entries = list(entries.values())
    if isinstance(entries, list) and entries and isinstance(entries[0], str):
        entries = [entries]
    if not isinstance(entries, list):
        return []
    return [e[0] for e in entries if isinstance(e, list) and e and isinstance(e[0], str)]


def _loss_of_output(compile_config: dict, index: int, name: str | None) -> Any:
    """The serialised loss of one output: losses may be one for all, a list in
    output order, or a dict keyed by output name."""
    loss = compile_config.get("loss")
    if isinstance(loss, dict) and "class_name" not in loss:
        return loss.get(name) if name in loss else None
    if isinstance(loss, list):
        return loss[index] if index < len(loss) else None
    return loss


def _loss(compile_config: dict, index: int = 0, name: str | None = None) -> tuple[str | None, bool]:
    loss = _loss_of_output(compile_config, index, name)
    if isinstance(loss, dict) and "class_name" not in loss:
        loss = next(iter(loss.values()), None)
    if isinstance(loss, list):
        loss = loss[0] if loss else None
    if isinstance(loss, str):
        return loss, False
    if isinstance(loss, dict):
        config = _config(loss)
        name = loss.get("class_name")
        if name == "function":
            name = config.get("name")
        from_logits = config.get("from_logits") is True
        if not isinstance(name, str):
            return None, from_logits
        # A built-in loss gets Keras's function name ("KLDivergence" ->
        # "kl_divergence", which snake-casing would spell "k_l_divergence").
        known = canonical_name(name)
        return (known if known != name else _snake(name)), from_logits
    return None, False


def _task(loss: str | None, activation: str | None, width: int | None) -> str:
    """The card's `task`, decided as the callback decides it (losses.infer_task)."""
    return infer_task(activation, loss, width)[0]


def model_card(model_json: Any) -> dict | None:
    """The model-card fields derivable from `model.to_json()` (parsed), or None."""
    if not isinstance(model_json, dict):
        return None
    config = _config(model_json)
    leaves = _flatten(config.get("layers"), config.get("trainable") is False)
    if not leaves:
        return None
    layers, dropout = [], []
    width = None
    output_activation = None
    by_name: dict[str, tuple[str | None, int | None]] = {}
    for leaf in leaves:
        class_name = str(leaf.get("class_name") or "")
        leaf_config = _config(leaf)
        name = str(leaf_config.get("name") or class_name)
        if class_name == "InputLayer":
            continue
        for kind in ("rate", "dropout", "recurrent_dropout"):
            if kind == "rate" and "Dropout" not in class_name:
                continue
            rate = _number(leaf_config.get(kind))
            if rate is not None and rate > 0:
                dropout.append({"name": name, "type": class_name, "kind": kind, "rate": rate})
        activation = _activation(leaf)
        units = leaf_config.get("units", leaf_config.get("filters"))
        if isinstance(units, int) and not isinstance(units, bool) and units > 0:
            width = units
            output_activation = activation
            by_name[name] = (activation, units)
        elif activation is not None and class_name in ("Activation", *_ACTIVATION_TYPES):
            output_activation = activation  # an Activation layer after the last Dense
        if any(key in leaf_config for key in ("units", "filters", "kernel_initializer")):
            initializer = _name_of(leaf_config.get("kernel_initializer"))
            layers.append(
                {
                    "name": name,
                    "type": class_name,
                    "activation": activation,
                    "trainable": not leaf["_frozen"] and leaf_config.get("trainable") is not False,
                    "kernel_initializer": initializer,
                }
            )
    compile_config = model_json.get("compile_config")
    compile_config = compile_config if isinstance(compile_config, dict) else {}
    output_names = [name for name in _output_names(config) if name in by_name]
    if output_names:
        # The model's first output, as the callback's card describes it: the
        # last Dense of a layer list may be another head.
        output_activation, width = by_name[output_names[0]]
    loss, from_logits = _loss(compile_config, 0, output_names[0] if output_names else None)
    output_name = output_names[0] if output_names else (layers[-1]["name"] if layers else None)
    outputs = [
        {
            "name": name,
            "shape": [None, by_name[name][1]],
            "activation": by_name[name][0],
            "loss": head_loss,
            "from_logits": head_logits,
        }
        for index, name in enumerate(output_names)
        for head_loss, head_logits in [_loss(compile_config, index, name)]
    ]
    card: dict[str, Any] = {
        "source": CARD_SOURCE,
        "model_class": str(model_json.get("class_name") or ""),
        "loss": loss,
        "optimizer": _optimizer(compile_config),
        "output_shape": [None, width] if width else None,
        "output_activation": output_activation,
        "outputs": outputs
        or [
            {
                "name": output_name,
                "shape": [None, width] if width else None,
                "activation": output_activation,
                "loss": loss,
                "from_logits": from_logits,
            }
        ],
        "task": _task(loss, output_activation, width),
        "num_classes": width if width and width >= 2 else (2 if width == 1 else None),
        "layers": layers,
        "dropout": dropout,
    }
    if layers and all(layer["trainable"] is False for layer in layers):
        card["trainable_params"] = 0
    return card
