"""Helpers of the plugin tests (no tests here): logdirs and a served plugin.

Logdirs are written the two ways users produce them: by the summary format's
own writer (what StagnationCallback uses) and by keras.callbacks.TensorBoard.
The plugin is served the way TensorBoard serves it: TensorBoardWSGI over
EventMultiplexer + MultiplexerDataProvider, as tensorboard's own plugin tests do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence

import numpy as np
from tensorboard.backend import application
from tensorboard.backend.event_processing import (
    data_ingester,
    data_provider,
    plugin_event_multiplexer,
)
from tensorboard.plugins import base_plugin
from werkzeug import test as werkzeug_test

from tb_stagnation.plugin.loader import StagnationLoader
from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin
from tb_stagnation.summary import tags
from tb_stagnation.summary.writer import SummaryWriter

HOSTILE_NAMES = (
    "<img src=x onerror=alert(1)>",
    "\"quoted\" 'single' & ampersand",
    "ünïcödé 🙂 名前",
    "%2e%2e%2f percent",
)
PREFIX = "/data/plugin/stagnation"


def tensorboard_flags(*argv: str) -> argparse.Namespace:
    """The flags `tensorboard` parses from `argv`: its core plugin's, which
    the plugin reads (`--grpc_creds_type` among them)."""
    from tensorboard.plugins.core import core_plugin

    parser = argparse.ArgumentParser()
    core_plugin.CorePluginLoader().define_flags(parser)
    return parser.parse_args(["--logdir", ".", *argv])


def write_callback_run(
    log_dir: str,
    epochs: int = 6,
    layers: Sequence[str] = ("dense", "dense_1"),
    start: int = 0,
    stall_from: int | None = None,
    nan_from: int | None = None,
    card_layers: Sequence[dict] | None = None,
) -> None:
    """A run in the format StagnationCallback writes, into `log_dir/stagnation`."""
    writer = SummaryWriter(os.path.join(log_dir, tags.RUN_SUBDIR), flush_secs=3600)
    width = len(layers)
    card = {
        "format_version": 1,
        "model_class": "Sequential",
        "loss": "categorical_crossentropy",
        "task": "classification",
        "num_classes": 3,
        "output_activation": "softmax",
        "layers": list(card_layers)
        if card_layers is not None
        else [
            {"name": name, "type": "Dense", "activation": "relu" if i < width - 1 else "softmax"}
            for i, name in enumerate(layers)
        ],
    }
    writer.write_model_card(start, card)
    for epoch in range(start, start + epochs):
        stalled = stall_from is not None and epoch >= stall_from
        loss = math.log(3) if stalled else 1.0 / (epoch + 1)
        if nan_from is not None and epoch >= nan_from:
            loss = math.nan
        grad = np.full(width, 1e-9 if stalled else 0.5 + epoch)
        writer.write_step(
            epoch,
            scalars={
                tags.logs_tag("loss"): loss,
                tags.logs_tag("accuracy"): 0.33 if stalled else 0.5 + epoch / 100,
                tags.logs_tag("val_loss"): loss * 1.1,
                tags.LEARNING_RATE: 0.01,
                tags.GRAD_GLOBAL_NORM: float(np.linalg.norm(grad)),
                tags.WEIGHT_GLOBAL_NORM: 3.0,
                tags.UPDATE_GLOBAL_NORM: 1e-9 if stalled else 0.01,
                tags.UPDATE_GLOBAL_RATIO: 1e-10 if stalled else 0.003,
                tags.GRAD_NONFINITE_FRACTION: 0.0,
                tags.PRED_ENTROPY: 1.0 if stalled else 0.4,
                tags.PRED_TOP_CLASS_SHARE: 1.0 if stalled else 0.4,
                tags.INPUT_MEAN: 0.0,
                tags.INPUT_STD: 1.0,
                tags.INPUT_MAX_ABS: 3.0,
                **({tags.PRED_CHANGED_SHARE: 0.1} if epoch > start else {}),
            },
            layer_stats={
                tags.LAYER_GRAD_NORM: grad,
                tags.LAYER_WEIGHT_NORM: np.full(width, 2.0),
                tags.LAYER_UPDATE_RATIO: grad * 1e-3,
                tags.LAYER_DEAD_FRACTION: [0.1] * (width - 1) + [math.nan],
            },
            class_counts=[10, 10, 10],
            wall_time=1.7e9 + epoch,
        )
    writer.close()


def train_keras_run(log_dir: str, epochs: int = 3) -> None:
    """A plain Keras run: keras.callbacks.TensorBoard only (train/, validation/)."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    model.fit(
        x,
        y,
        epochs=epochs,
        validation_data=(x, y),
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(log_dir=log_dir)],
    )


def plugin_analyze():
    """What the plugin analyses a run with (the function `analyze()` uses)."""
    from tb_stagnation.plugin.stagnation_plugin import analyze_run

    return analyze_run


class ServedPlugin:
    """The plugin inside TensorBoard's WSGI app over a Python multiplexer."""

    def __init__(self, logdir: str, analyze=None, path_prefix: str = "") -> None:
        # What `tensorboard --logdir` builds, flags fixed by our loader first.
        flags = argparse.Namespace(samples_per_plugin={})
        StagnationLoader().fix_flags(flags)
        self.multiplexer = plugin_event_multiplexer.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
            tensor_size_guidance={
                **data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE,
                **flags.samples_per_plugin,
            },
        )
        self.multiplexer.AddRunsFromDirectory(logdir)
        self.multiplexer.Reload()
        provider = data_provider.MultiplexerDataProvider(self.multiplexer, logdir)
        context = base_plugin.TBContext(data_provider=provider, logdir=logdir)
        self.plugin = StagnationPlugin(context, analyze=analyze or plugin_analyze())
        self.app = application.TensorBoardWSGI(
            [self.plugin], data_provider=provider, path_prefix=path_prefix
        )
        self.client = werkzeug_test.Client(self.app)
        self.path_prefix = path_prefix

    def reload(self, logdir: str) -> None:
        self.multiplexer.AddRunsFromDirectory(logdir)
        self.multiplexer.Reload()

    def get(self, route: str, **kwargs):
        return self.client.get(self.path_prefix + PREFIX + route, **kwargs)

    def get_json(self, route: str, status: int = 200, **kwargs):
        response = self.get(route, **kwargs)
        assert response.status_code == status, (route, response.status_code, response.data[:300])
        assert response.headers["Content-Type"] == "application/json"
        return json.loads(response.get_data(as_text=True))
