"""Past runs logged by `keras.callbacks.TensorBoard` alone: the static checks read
from the model config Keras logs (write_graph=True, its default), and what is
left without it. Real trainings, real event files, read through the reader.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tb_stagnation.analysis.api import analyze

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.slow

CONFIG_TEXT = "model config that keras.callbacks.TensorBoard logged"


def _data(classes: int = 2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, :classes].argmax(axis=1) if classes > 2 else (x[:, 0] > 0)).astype("int32")
    return x, y


def _train(log_dir, layers, loss, optimizer="adam", *, epochs=8, write_graph=True, hist=0):
    keras.utils.set_random_seed(1)
    x, y = _data()
    model = keras.Sequential([keras.Input((8,)), *layers])
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(
            x, y, epochs=epochs, batch_size=64, verbose=0, validation_split=0.25,
            callbacks=[keras.callbacks.TensorBoard(
                log_dir=str(log_dir), write_graph=write_graph, histogram_freq=hist)],
        )  # fmt: skip
    (report,) = analyze(str(log_dir))["runs"]
    assert report["source"] == "keras"
    return report


def _codes(report):
    return [f["code"] for f in report["findings"]]


@pytest.mark.parametrize("hist", [0, 1])
def test_softmax_over_one_unit_is_read_from_the_logged_config(tmp_path, hist):
    layers = [
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="softmax"),
    ]
    report = _train(tmp_path / "run", layers, "binary_crossentropy", hist=hist)
    top = report["findings"][0]
    assert top["code"] == "loss_output_mismatch"
    assert CONFIG_TEXT in top["evidence"]
    assert report["stalled_epochs"], "accuracy frozen at one value is a stall"


def test_without_write_graph_only_the_curves_speak(tmp_path):
    layers = [
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="softmax"),
    ]
    report = _train(tmp_path / "run", layers, "binary_crossentropy", write_graph=False)
    assert "loss_output_mismatch" not in _codes(report)
    assert report["stalled_epochs"]  # the frozen accuracy still shows
    assert any("keras.callbacks.TensorBoard only" in note for note in report["notes"])


def test_frozen_model_from_the_logged_config(tmp_path):
    hidden = keras.layers.Dense(16, activation="relu", trainable=False)
    out = keras.layers.Dense(2, activation="softmax", trainable=False)
    report = _train(tmp_path / "run", [hidden, out], "sparse_categorical_crossentropy")
    assert report["findings"][0]["code"] == "frozen_layers"
    assert CONFIG_TEXT in report["findings"][0]["evidence"]


def test_dropout_near_one_from_the_logged_config(tmp_path):
    layers = [
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dropout(0.99),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dropout(0.99),
        keras.layers.Dense(2, activation="softmax"),
    ]
    report = _train(tmp_path / "run", layers, "sparse_categorical_crossentropy", epochs=10)
    assert "dropout_too_high" in _codes(report)
    dropout = next(f for f in report["findings"] if f["code"] == "dropout_too_high")
    assert "rate=0.99" in dropout["evidence"]


def test_tiny_rate_is_judged_against_the_logged_optimizer(tmp_path):
    layers = [
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ]
    optimizer = keras.optimizers.SGD(learning_rate=1e-7)
    report = _train(tmp_path / "run", layers, "sparse_categorical_crossentropy", optimizer)
    top = report["findings"][0]
    assert top["code"] == "learning_rate_too_small"
    assert "Keras's default for SGD" in top["evidence"]


def test_healthy_run_stays_healthy_with_config_and_histograms(tmp_path):
    layers = [
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ]
    optimizer = keras.optimizers.Adam(0.01)  # learns clearly within the 10 epochs
    report = _train(
        tmp_path / "run", layers, "sparse_categorical_crossentropy", optimizer, epochs=10, hist=1
    )
    assert report["healthy"] and report["findings"] == [], report
