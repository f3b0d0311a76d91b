"""`tb_stagnation.lr_range_test` and `overfit_check(fix=...)`, on real training.

The claim under test is the useful one: a model restarted with the suggested
rate learns. Each such test trains a fresh model (same architecture, same
seed) at the suggestion and checks that its loss ends below what a constant
prediction scores (ln C for C balanced classes, the label variance for MSE);
where the scenario's own rate is the cause, the same training at that rate is
the control that stays at the baseline.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from scenarios import BATCH, SCENARIOS, _classification, _mlp, _seed  # noqa: E402

import tb_stagnation  # noqa: E402
from tb_stagnation.lr_range import LRRangeResult, LRRangeTestError, lr_range_test  # noqa: E402
from tb_stagnation.overfit import OverfitCheckError, fmt_rate, overfit_check  # noqa: E402

LN2 = math.log(2)
LN3 = math.log(3)
# "Learned": the loss ends at most this share of the constant predictor's.
LEARNED = 0.75
EPOCHS = 3


def scenario(name: str) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """The scenario's model, compiled as the scenario compiles it, and its data."""
    keras.utils.set_random_seed(_seed(name))
    spec = SCENARIOS[name].build()
    model = spec.pop("model")
    model.compile(**spec.pop("compile"))
    return model, spec["x"], spec["y"]


def restarted_loss(name: str, optimizer: keras.optimizers.Optimizer, epochs: int = EPOCHS) -> float:
    """The last epoch's loss of the scenario's architecture, freshly initialised
    (same seed), trained with `optimizer`."""
    keras.utils.set_random_seed(_seed(name))
    spec = SCENARIOS[name].build()
    model = spec.pop("model")
    compile_kwargs = spec.pop("compile")
    model.compile(optimizer=optimizer, loss=compile_kwargs["loss"])
    history = model.fit(spec["x"], spec["y"], epochs=epochs, batch_size=BATCH, verbose=0)
    return float(history.history["loss"][-1])


def state(model: keras.Model) -> list:
    """Every weight and optimizer variable of the model, as numpy."""
    optimizer = [v.numpy().copy() for v in model.optimizer.variables]
    return [w.copy() for w in model.get_weights()] + optimizer


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# ------------------------------------------------ the suggestion makes it learn


@pytest.mark.parametrize(
    "name, reinitialize",
    [
        ("learning_rate_too_small", False),
        # SGD at 10 leaves weights that learn at no rate: the sweep restarts.
        ("learning_rate_too_large", True),
    ],
)
def test_a_model_restarted_at_the_suggested_rate_learns(name, reinitialize):
    model, x, y = scenario(name)
    own_rate = float(model.optimizer.learning_rate.numpy())
    optimizer_class = type(model.optimizer)
    # The user's run: it stalls at (or above) the constant predictor's loss.
    stalled = model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0).history["loss"][-1]
    assert not stalled < LEARNED * LN3, stalled

    result = lr_range_test(model, x, y, reinitialize=reinitialize)
    assert result.verdict == "suggested", result
    rate = result.suggested_lr
    assert rate is not None
    assert result.divergence_lr is None or rate < result.divergence_lr
    assert f"suggested learning rate {fmt_rate(rate)}" in str(result)
    # The message compares it with the rate that stalled.
    assert ("x lower" if rate > own_rate else "x higher") in str(result)

    learned = restarted_loss(name, optimizer_class(learning_rate=rate))
    control = restarted_loss(name, optimizer_class(learning_rate=own_rate))
    assert learned < LEARNED * LN3, (rate, learned)
    assert not control < LEARNED * LN3, (own_rate, control)


def test_after_a_diverged_run_the_current_weights_learn_at_no_rate_and_it_says_so():
    model, x, y = scenario("learning_rate_too_large")
    model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
    result = lr_range_test(model, x, y)
    assert result.verdict == "never_falls" and result.suggested_lr is None, result
    assert "not the problem" in str(result) and "reinitialize=True" in str(result)


@pytest.mark.parametrize("name, baseline", [("healthy", LN3), ("healthy_early_plateau", LN2)])
def test_on_a_healthy_run_the_suggestion_is_near_the_rate_that_worked(name, baseline):
    model, x, y = scenario(name)
    worked = float(model.optimizer.learning_rate.numpy())
    result = lr_range_test(model, x, y)
    assert result.verdict == "suggested", result
    assert worked / 10 <= result.suggested_lr <= worked * 10, (worked, result)
    assert result.suggested_lr <= result.steepest_lr < result.min_loss_lr
    assert result.divergence_lr is None or result.suggested_lr <= result.divergence_lr / 10
    learned = restarted_loss(name, keras.optimizers.Adam(result.suggested_lr))
    assert learned < LEARNED * baseline, learned


OPTIMIZERS = [
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Ftrl",
    "Lion",
    "Lamb",
    "Adafactor",
    "Muon",
    "ScheduleFreeAdamW",
]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_keras_optimizer_gets_a_rate_it_learns_at(name):
    if not hasattr(keras.optimizers, name):
        pytest.skip(f"this Keras has no {name}")
    optimizer_class = getattr(keras.optimizers, name)
    x, y = _classification()
    keras.utils.set_random_seed(7)
    model = _mlp()
    model.compile(optimizer_class(), "sparse_categorical_crossentropy")
    result = lr_range_test(model, x, y)
    assert result.verdict == "suggested" and result.optimizer == name, result
    keras.utils.set_random_seed(8)
    fresh = _mlp()
    fresh.compile(
        optimizer_class(learning_rate=result.suggested_lr), "sparse_categorical_crossentropy"
    )
    loss = fresh.fit(x, y, epochs=5, batch_size=BATCH, verbose=0).history["loss"][-1]
    assert loss < LEARNED * LN3, (result.suggested_lr, loss)


# ------------------------------------------------------ what it leaves alone


def test_the_model_its_weights_and_optimizer_state_are_untouched():
    x, y = _classification()
    keras.utils.set_random_seed(3)
    model = _mlp()
    schedule = keras.optimizers.schedules.ExponentialDecay(3e-3, decay_steps=10, decay_rate=0.9)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)  # optimizer state, iterations 16
    before = state(model)
    loss, optimizer = model.loss, model.optimizer
    result = lr_range_test(model, x, y)
    assert result.verdict == "suggested", result
    # The sweep replaced the schedule in its own optimizer, not in the model's.
    assert result.current_lr == pytest.approx(3e-3 * 0.9 ** (16 / 10), rel=1e-4)
    assert same(before, state(model))
    assert model.loss is loss and model.optimizer is optimizer
    assert isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert int(model.optimizer.iterations.numpy()) == 16
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)  # still trains as before
    assert not same(before, state(model))


def test_a_loss_scaled_optimizer_is_swept_through_its_inner_one():
    x, y = _classification()
    keras.utils.set_random_seed(3)
    model = _mlp()
    model.compile(
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
        "sparse_categorical_crossentropy",
    )
    result = lr_range_test(model, x, y)
    assert result.verdict == "suggested" and 1e-3 < result.suggested_lr < 3, result


def test_an_optimizer_with_several_rates_is_refused_clearly():
    x, y = _classification()
    model = _mlp()
    parts = keras.optimizers.OptimizerMap(default_optimizer=keras.optimizers.Adam())
    model.compile(keras.optimizers.MultiOptimizer(parts), "sparse_categorical_crossentropy")
    with pytest.raises(LRRangeTestError, match="single learning_rate"):
        lr_range_test(model, x, y)


# --------------------------------------------------------------- the inputs


def test_a_tf_data_dataset_is_cycled_and_agrees_with_arrays():
    x, y = _classification()
    keras.utils.set_random_seed(3)
    model = _mlp()
    model.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy")
    from_arrays = lr_range_test(model, x, y)
    # 16 batches, not shuffled, weights of 1: the sweep reads it ~6 times.
    weights = np.ones(len(y), dtype="float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(BATCH)
    from_dataset = lr_range_test(model, dataset)
    assert from_dataset.verdict == "suggested", from_dataset
    assert len(from_dataset.losses) > len(x) // BATCH
    ratio = from_dataset.suggested_lr / from_arrays.suggested_lr
    assert 1 / 3 <= ratio <= 3, (from_arrays, from_dataset)
    with pytest.raises(LRRangeTestError, match="y=None"):
        lr_range_test(model, dataset, y)
    with pytest.raises(LRRangeTestError, match="empty"):
        lr_range_test(model, dataset.take(0))


def test_a_regression_model_gets_a_rate_it_learns_at():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(512, 10)).astype("float32")
    y = x @ rng.normal(size=(10, 1)) + np.sin(2 * x[:, :1]) + 0.1 * rng.normal(size=(512, 1))
    y = y.astype("float32")

    def build() -> keras.Model:
        keras.utils.set_random_seed(12)
        return keras.Sequential(
            [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
        )

    model = build()
    model.compile(keras.optimizers.SGD(1e-5), "mse")
    result = lr_range_test(model, x, y)
    assert result.verdict == "suggested", result
    # The constant predictor of the seen batches' labels: their variance.
    assert result.reference_loss == pytest.approx(float(y.var()), rel=0.15)
    fresh = build()
    fresh.compile(keras.optimizers.SGD(result.suggested_lr), "mse")
    loss = fresh.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0).history["loss"][-1]
    assert loss < 0.25 * float(y.var()), (result.suggested_lr, loss)
    restarted = build()
    restarted.compile(keras.optimizers.SGD(1e-5), "mse")
    stalled = restarted.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0).history["loss"][-1]
    assert stalled > 0.5 * float(y.var())


# -------------------------------------------------------------- edge cases


def test_a_rate_cannot_help_and_it_says_so():
    model, x, y = scenario("dead_units")
    result = lr_range_test(model, x, y)
    assert result.verdict == "never_falls" and result.suggested_lr is None, result
    assert "not the problem" in str(result) and "reinitialize" not in str(result)
    # A model that only learns the class shares has not fallen either.
    model, x, y = scenario("class_imbalance")
    result = lr_range_test(model, x, y)
    assert result.verdict == "never_falls", result
    assert "constant prediction" in str(result)


def test_no_trainable_weights_not_compiled_nan_and_early_divergence():
    model, x, y = scenario("frozen_layers")
    result = lr_range_test(model, x, y)
    assert result.verdict == "untrainable" and result.learning_rates == [], result
    assert "no trainable weights" in str(result)

    with pytest.raises(LRRangeTestError, match="compile"):
        lr_range_test(_mlp(), *(_classification()))

    model, x, y = scenario("healthy")
    broken = x.copy()
    broken[::7, 0] = np.nan
    result = lr_range_test(model, broken, y)
    assert result.verdict == "nonfinite" and result.suggested_lr is None, result
    assert len(result.losses) == 1
    assert result.nonfinite_data and "clean or impute" in str(result)
    data = result.to_json()
    assert data["losses"] == [None]
    json.dumps(data, allow_nan=False)
    # NaN in a few rows only: the first batches train, then one is NaN. That is
    # the data, not a divergence.
    broken = x.copy()
    broken[300, 0] = np.nan
    result = lr_range_test(model, broken, y)
    assert result.verdict == "nonfinite" and result.divergence_lr is None, result
    assert 1 < len(result.losses) < 100 and "NaN/Inf in its inputs" in str(result)

    model, x, y = scenario("unscaled_inputs")
    result = lr_range_test(model, x, y)
    assert result.verdict == "diverges_at_start", result
    assert result.divergence_lr is not None and "lower min_lr" in str(result)


def test_arguments_are_checked():
    model, x, y = scenario("healthy")
    with pytest.raises(ValueError, match="min_lr"):
        lr_range_test(model, x, y, min_lr=1.0, max_lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        lr_range_test(model, x, y, steps=3)
    with pytest.raises(ValueError, match="max_lr"):
        lr_range_test(model, x, y, max_lr=float("nan"))
    with pytest.raises(LRRangeTestError, match="labels"):
        lr_range_test(model, x)
    with pytest.raises(LRRangeTestError, match="numbers of samples"):
        lr_range_test(model, x, y[:10])


def test_the_result_is_plain_lists_of_floats_for_logging():
    model, x, y = scenario("healthy")
    result = lr_range_test(model, x, y, min_lr=1e-5, max_lr=1.0, steps=40)
    assert isinstance(result, LRRangeResult) and result.verdict == "suggested"
    assert len(result.learning_rates) == len(result.losses) == len(result.smoothed) <= 40
    assert result.learning_rates[0] == pytest.approx(1e-5)
    assert all(type(v) is float for v in result.learning_rates + result.losses + result.smoothed)
    assert np.all(np.diff(result.learning_rates) > 0)
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert data["suggested_lr"] == pytest.approx(result.suggested_lr)
    assert "suggested_lr=" in repr(result) and result.message == str(result)


# --------------------------------------------------- overfit_check(fix=...)


@pytest.mark.filterwarnings("ignore:In loss categorical_crossentropy:SyntaxWarning")
def test_fix_a_wrong_loss():
    # categorical_crossentropy over one sigmoid unit (the findings' "categorical
    # loss on one unit"): the loss is 0 whatever the model predicts. The
    # scenario loss_output_mismatch (binary loss on a softmax) can fit 20 samples.
    x, y = _classification(classes=2)
    keras.utils.set_random_seed(3)
    model = _mlp(output="sigmoid")
    model.compile("adam", "categorical_crossentropy")
    labels = y[:, None].astype("float32")
    failing = overfit_check(model, x, labels)
    assert not failing.passed and "binary_crossentropy" in str(failing), failing
    before = state(model)
    fixed = overfit_check(model, x, labels, fix={"loss": "binary_crossentropy"})
    assert fixed.passed, fixed
    assert str(fixed).startswith("checked: with binary_crossentropy this model fits 20 samples in")
    assert f"in {fixed.epochs} steps" in str(fixed) and fixed.fix == "binary_crossentropy"
    assert same(before, state(model)) and model.loss == "categorical_crossentropy"


def test_fix_a_learning_rate_too_small_with_the_suggested_one():
    model, x, y = scenario("learning_rate_too_small")
    failing = overfit_check(model, x, y)
    assert not failing.passed, failing
    rate = lr_range_test(model, x, y).suggested_lr
    fixed = overfit_check(model, x, y, fix={"learning_rate": rate})
    assert fixed.passed, fixed
    text = fmt_rate(rate)
    assert str(fixed).startswith(f"checked: with learning rate {text} this model fits 20 samples")
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-7)
    # A rate as small as the model's own does not fit, and the message says so.
    still = overfit_check(model, x, y, max_epochs=60, fix={"learning_rate": 1e-6})
    assert not still.passed and "this model does not fit 20 samples" in str(still), still


def test_fix_an_output_activation():
    # Standardised regression targets into a sigmoid, which cannot go below 0.
    x, _ = _classification()
    targets = x @ np.linspace(-1, 1, 10)
    targets = ((targets - targets.mean()) / targets.std()).astype("float32")
    keras.utils.set_random_seed(3)
    inputs = keras.Input((10,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile("adam", "mse")
    assert not overfit_check(model, x, targets).passed
    fixed = overfit_check(model, x, targets, fix={"output_activation": "linear"})
    assert fixed.passed and str(fixed).startswith("checked: with a linear output"), fixed
    assert model.layers[-1].activation is keras.activations.sigmoid


def test_fix_is_checked():
    model, x, y = scenario("healthy")
    with pytest.raises(ValueError, match="can change"):
        overfit_check(model, x, y, fix={"optimizer": "sgd"})
    with pytest.raises(ValueError, match="positive"):
        overfit_check(model, x, y, fix={"learning_rate": -1})
    with pytest.raises(ValueError, match="dict"):
        overfit_check(model, x, y, fix={})
    inputs = keras.Input((10,))
    two = keras.Model(inputs, [keras.layers.Dense(1)(inputs), keras.layers.Dense(1)(inputs)])
    two.compile("adam", ["mse", "mse"])
    with pytest.raises(OverfitCheckError, match="one output"):
        overfit_check(two, x, [y, y], fix={"output_activation": "linear"})
    with pytest.raises(OverfitCheckError, match="does not train"):
        overfit_check(model, x, y, fix={"loss": "categorical_crossentropy"})


def test_exported_lazily_from_the_package():
    assert tb_stagnation.lr_range_test is lr_range_test
    code = (
        "import sys, tb_stagnation; tb_stagnation.lr_range_test;"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_divergence_rate_named_is_where_the_curve_shown_blows_up():
    """The stop rule's moving average lags the loss by a decade of the rate; the
    rate the message names (and the tab marks) must be where the plotted,
    lag-free curve first passes 4x its lowest value, not where the sweep stopped."""
    model, x, y = scenario("learning_rate_too_small")
    result = lr_range_test(model, x, y)
    assert result.verdict == "suggested" and result.divergence_lr is not None, result
    smoothed = np.asarray(result.smoothed)
    at = result.learning_rates.index(result.divergence_lr)
    lowest = int(np.nanargmin(smoothed[:at]))
    limit = 4 * smoothed[lowest]
    assert smoothed[at] > limit, (result.divergence_lr, smoothed[at], limit)
    assert not (smoothed[lowest:at] > limit).any(), "it blew up at a lower rate than named"
    assert f"diverges above {fmt_rate(result.divergence_lr)}" in str(result)
