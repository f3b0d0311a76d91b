"""Past runs logged by `keras.callbacks.TensorBoard` alone: the static checks read
from the model config Keras logs (write_graph=True, its default), and what is
left without it. Real trainings, real event files, read through the reader.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from tb_stagnation.analysis.api import analyze

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


HISTOGRAM_TEXT = "weight histograms Keras logged"
# Keras before 3.14 tags a weight's histogram by its bare name ("kernel/histogram"
# for every Dense), so its logs cannot tell which layer's weights changed; the
# reader then ignores them (reader/keras_histograms.py).
_KERAS_VERSION = tuple(int(part) for part in keras.__version__.split(".")[:2])
needs_layer_histograms = pytest.mark.skipif(
    _KERAS_VERSION < (3, 14), reason="Keras < 3.14 logs histograms without their layer"
)


@needs_layer_histograms
def test_frozen_model_from_the_weight_histograms_alone(tmp_path):
    # No model config (write_graph=False): only the histograms show the freeze.
    hidden = keras.layers.Dense(16, activation="relu", trainable=False)
    out = keras.layers.Dense(2, activation="softmax", trainable=False)
    report = _train(
        tmp_path / "run", [hidden, out], "sparse_categorical_crossentropy",
        write_graph=False, hist=1,
    )  # fmt: skip
    top = report["findings"][0]
    assert top["code"] == "frozen_layers"
    assert HISTOGRAM_TEXT in top["evidence"] and "every layer" in top["evidence"]
    assert "epochs 0-7" in top["evidence"]


def test_frozen_base_from_histograms_while_the_head_learns_is_not_blamed(tmp_path):
    # Half the layers frozen, the head learns and the run is healthy: no finding.
    layers = [
        keras.layers.Dense(16, activation="relu", trainable=False),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ]
    optimizer = keras.optimizers.Adam(0.01)
    report = _train(
        tmp_path / "run", layers, "sparse_categorical_crossentropy", optimizer,
        epochs=10, write_graph=False, hist=1,
    )  # fmt: skip
    assert "frozen_layers" not in _codes(report), report


@needs_layer_histograms
def test_config_freeze_is_confirmed_by_the_histograms(tmp_path):
    hidden = keras.layers.Dense(16, activation="relu", trainable=False)
    out = keras.layers.Dense(2, activation="softmax", trainable=False)
    report = _train(tmp_path / "run", [hidden, out], "sparse_categorical_crossentropy", hist=1)
    top = report["findings"][0]
    assert top["code"] == "frozen_layers"
    assert CONFIG_TEXT in top["evidence"]
    assert "histograms Keras logged for them are identical" in top["evidence"]


def _fit_case(log_dir, training):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        training.model.fit(
            **training.fit, verbose=0,
            callbacks=[keras.callbacks.TensorBoard(log_dir=str(log_dir))],
        )  # fmt: skip
    (report,) = analyze(str(log_dir))["runs"]
    return report


@pytest.mark.parametrize("relu", [False, True])
def test_deep_tanh_stack_with_unscaled_kernels_from_the_logged_config(tmp_path, relu):
    # The tutorial's five tanh layers with RandomUniform(0, 1) kernels (field
    # case tab_deep_tanh_uniform_init) and its fix, ReLU with he_uniform.
    from field_cases.cases_tabular import _deep_circles

    keras.utils.set_random_seed(1)
    report = _fit_case(tmp_path / "run", _deep_circles(relu=relu))
    if relu:
        # ReLU layers are no saturating stack, whatever this seed's run does.
        assert "vanishing_gradients" not in _codes(report), report
        return
    assert report["stalled_epochs"], report
    assert "vanishing_gradients" in _codes(report)[:3]
    finding = next(f for f in report["findings"] if f["code"] == "vanishing_gradients")
    assert "5 hidden layers in a row" in finding["evidence"]
    assert "RandomUniform" in finding["evidence"] and CONFIG_TEXT in finding["evidence"]


def test_deep_tanh_stack_with_glorot_kernels_gets_no_config_claim(tmp_path):
    layers = [keras.layers.Dense(16, activation="tanh") for _ in range(5)]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    report = _train(tmp_path / "run", layers, "binary_crossentropy", epochs=10)
    assert "vanishing_gradients" not in _codes(report), report


def test_two_output_model_pairs_each_loss_with_its_own_head(tmp_path):
    # The config lists the heads in a layer order where the last Dense is the
    # regression head: the classifier's loss must be read against its own softmax.
    keras.utils.set_random_seed(1)
    x, y = _data()
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    label = keras.layers.Dense(2, activation="softmax", name="label")(hidden)
    value = keras.layers.Dense(1, name="value")(hidden)
    model = keras.Model(inputs, [label, value])
    model.compile("adam", loss=["sparse_categorical_crossentropy", "mse"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(
            x, [y, x[:, :1]], epochs=6, batch_size=64, verbose=0,
            callbacks=[keras.callbacks.TensorBoard(log_dir=str(tmp_path / "run"))],
        )  # fmt: skip
    (report,) = analyze(str(tmp_path / "run"))["runs"]
    assert "loss_output_mismatch" not in _codes(report), report
    assert report["healthy"], report


@pytest.mark.parametrize("zeros", [True, False])
def test_zero_kernels_under_relu_from_the_logged_config(tmp_path, zeros):
    # Field case data_zero_kernel_init and its twin (glorot_uniform).
    from field_cases.cases_data import _zero_init

    keras.utils.set_random_seed(1)
    report = _fit_case(tmp_path / "run", _zero_init(zeros=zeros))
    if not zeros:
        assert "zero_gradients" not in _codes(report), report
        return
    assert report["stalled_epochs"], report
    finding = next(f for f in report["findings"] if f["code"] == "zero_gradients")
    assert "kernel_initializer='zeros'" in finding["evidence"]
    assert CONFIG_TEXT in finding["evidence"]
