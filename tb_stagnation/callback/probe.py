"""The fixed probe: the model's predictions and unit activity at epoch end.

The probe is the first `probe_size` training samples, captured in-graph by
`GraphRecorder`. At each epoch end the callback runs the model on it in
inference mode (`training=False`): its predictions give the prediction
statistics, the outputs of layers with a ReLU or saturating activation give
the dead and saturated fractions. For Sequential and functional models one
`keras.Model` returns the model outputs and those layer outputs in a single
pass, and the layer outputs are reduced to one number per unit inside the
same `tf.function` (copying a conv layer's activations to the host would cost
more than the forward pass). Subclassed models have no layer graph to tap,
so their unit statistics stay NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tb_stagnation.callback.epoch_stats import (
    DEAD_ACTIVATIONS,
    SATURATING_ACTIVATIONS,
    SATURATION_PREACTIVATION,
    unit_fractions,
)
from tb_stagnation.callback.model_info import LayerInfo, layer_activation
from tb_stagnation.compat import keras as compat_keras

_ACTIVATION_ONLY_LAYERS = frozenset({"Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "PReLU"})
_SIGMOID_LOW = 1.0 / (1.0 + math.exp(SATURATION_PREACTIVATION))
_TANH_HIGH = math.tanh(SATURATION_PREACTIVATION)
_SOFTSIGN_HIGH = SATURATION_PREACTIVATION / (1.0 + SATURATION_PREACTIVATION)


@dataclass
class ProbeResult:
    outputs: list  # flat model outputs, numpy
    dead: np.ndarray  # per layer, NaN where it does not apply
    saturated: np.ndarray


def saturated_entries(tf: Any, outputs: Any, activation: str) -> Any:
    """Boolean tensor: where a saturating activation's output is past the bound.

    See `epoch_stats.SATURATION_PREACTIVATION` for the threshold and its source.
    """
    if activation == "sigmoid":
        return (outputs <= _SIGMOID_LOW) | (outputs >= 1.0 - _SIGMOID_LOW)
    if activation == "tanh":
        return tf.abs(outputs) >= _TANH_HIGH
    if activation == "hard_sigmoid":
        return (outputs <= 0.0) | (outputs >= 1.0)
    if activation == "hard_tanh":
        return tf.abs(outputs) >= 1.0
    if activation == "softsign":
        return tf.abs(outputs) >= _SOFTSIGN_HIGH
    raise ValueError(f"not a saturating activation: {activation!r}")


def _single_consumer(layer: Any) -> Any:
    operations = {id(op): op for op in compat_keras.consumer_operations(layer)}
    if len(operations) == 1:
        return next(iter(operations.values()))
    return None


def _unit_tensor(info: LayerInfo) -> tuple[Any, str] | None:
    """The tensor whose units a layer's dead/saturated fraction is measured on.

    A layer with no activation of its own followed by an activation-only layer
    (Dense -> ReLU, Conv2D -> Activation("tanh")) is measured after that layer.
    """
    layer = info.layer
    activation = info.activation
    try:
        tensor = layer.output
    except (AttributeError, ValueError):  # shared layers have several outputs
        return None
    if activation in (None, "linear"):
        consumer = _single_consumer(layer)
        if consumer is not None and type(consumer).__name__ in _ACTIVATION_ONLY_LAYERS:
            try:
                tensor = consumer.output
            except (AttributeError, ValueError):
                return None
            activation = layer_activation(consumer)
    if activation in DEAD_ACTIVATIONS or activation in SATURATING_ACTIVATIONS:
        return tensor, activation
    return None


class ProbeRunner:
    """Builds the probe function once per fit and runs it at every epoch end."""

    def __init__(self, tf: Any, keras: Any, model: Any, layers: list[LayerInfo], x_structure: Any):
        self._tf = tf
        self._keras = keras
        self._model = model
        self._num_layers = len(layers)
        self._x_structure = x_structure
        self._num_outputs: int | None = None
        self._unit_layers: list[tuple[int, str]] = []
        self._function = self._build(layers)
        # One probe function per fit is by design, not the retracing loop
        # TensorFlow's warning (keyed on the Python code) suspects.
        compat_keras.quiet_retracing_warning(self._function)

    def _build(self, layers: list[LayerInfo]) -> Any:
        tf, keras, model = self._tf, self._keras, self._model
        inputs, outputs = compat_keras.graph_inputs(model), compat_keras.graph_outputs(model)
        if inputs is not None and outputs is not None:
            flat_outputs = keras.tree.flatten(outputs)
            taps = []
            for index, info in enumerate(layers):
                found = _unit_tensor(info)
                if found is not None:
                    taps.append(found[0])
                    self._unit_layers.append((index, found[1]))
            try:
                extended = keras.Model(inputs=inputs, outputs=flat_outputs + taps)
            except Exception:
                # A tapped tensor outside this graph (a nested model's layer):
                # keep the predictions, skip unit statistics.
                extended = None
                self._unit_layers = []
            if extended is not None:
                self._num_outputs = len(flat_outputs)
                activations = [activation for _, activation in self._unit_layers]
                count = len(flat_outputs)

                def run(x: Any) -> Any:
                    results = keras.tree.flatten(extended(x, training=False))
                    summaries = [
                        self._summarise(values, activation)
                        for values, activation in zip(results[count:], activations)
                    ]
                    return list(results[:count]), summaries

                # No AutoGraph: there is no tensor-dependent Python control flow
                # here, and converting this module's source took ~0.4 s.
                return tf.function(run, reduce_retracing=True, autograph=False)
        self._unit_layers = []
        return tf.function(
            lambda x: (keras.tree.flatten(model(x, training=False)), []),
            reduce_retracing=True,
            autograph=False,
        )

    def _summarise(self, values: Any, activation: str) -> Any:
        """One number per unit (last axis): its max, or its saturated share."""
        tf = self._tf
        units = values.shape[-1]
        rows = tf.reshape(tf.cast(values, tf.float32), [-1, units])
        if activation in DEAD_ACTIVATIONS:
            return tf.reduce_max(rows, axis=0)
        return tf.reduce_mean(tf.cast(saturated_entries(tf, rows, activation), tf.float32), 0)

    def run(self, leaves: list[np.ndarray]) -> ProbeResult:
        keras = self._keras
        x = keras.tree.pack_sequence_as(self._x_structure, list(leaves))
        outputs, summaries = self._function(x)
        dead = np.full(self._num_layers, math.nan)
        saturated = np.full(self._num_layers, math.nan)
        for (index, activation), summary in zip(self._unit_layers, summaries):
            summary = np.asarray(summary)
            if activation in DEAD_ACTIVATIONS:
                dead[index], _ = unit_fractions(summary, None)
            else:
                _, saturated[index] = unit_fractions(None, summary)
        return ProbeResult(outputs=[np.asarray(o) for o in outputs], dead=dead, saturated=saturated)
