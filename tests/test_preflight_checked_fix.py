"""The pre-flight checks its own fix: with `overfit_check=True`, a
`loss_output_mismatch` whose fix names a loss or an output activation is
re-run through the 20-sample test with that change, and the warning says
whether the change makes the model fit ("Checked: with a linear output this
model fits 20 samples in 40 steps"). Real Keras training, no mocks.

Cases the pre-flight can check are the ones Keras trains at all: a loss that
Keras refuses at the first step (categorical_crossentropy with class ids)
leaves no batch to test with, so its warning stays unchecked.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from test_preflight import CLASSES, SAMPLES, X, mlp, train  # noqa: E402

from tb_stagnation.analysis.detectors import label_encoding  # noqa: E402

RNG = np.random.default_rng(11)
# Negative regression targets (a function of the inputs) into a relu output:
# the fix is a linear output.
NEGATIVE = -(3.0 + np.clip(X[:, 0], -2.5, 2.5)).astype("float32")
# Targets of 0..1000 into a sigmoid: a linear output is right, but Adam at 1e-3
# cannot reach them within the check's step cap on unscaled targets.
HUGE = RNG.uniform(0, 1000, SAMPLES).astype("float32")


def flat(text: str) -> str:
    return " ".join(text.split())


def only_warning(outcome) -> str:
    assert outcome.error is None, outcome.error
    assert len(outcome.warnings) == 1, outcome.warnings
    return flat(outcome.warnings[0])


def test_the_suggested_fix_is_checked_and_really_fits(tmp_path, capsys):
    outcome = train(
        tmp_path, capsys, mlp(1, "relu"), "mse", X, NEGATIVE, shuffle=False, overfit_check=True
    )
    message = only_warning(outcome)
    print(message)
    assert "loss_output_mismatch" in message
    assert "Checked: with a linear output this model fits 20 samples in" in message
    steps = int(message.split("fits 20 samples in ")[1].split(" step")[0])
    assert 1 <= steps <= 500
    # Independently: the same model with a linear output, trained on the same
    # 20 rows (shuffle=False: the first batch's first rows), fits them.
    keras.utils.set_random_seed(3)
    fixed = mlp(1, None)
    fixed.compile(optimizer="adam", loss="mse")
    x, y = X[:20], NEGATIVE[:20]
    history = fixed.fit(x, y, batch_size=20, epochs=500, verbose=0)
    assert history.history["loss"][-1] <= 0.1 * float(np.mean((y - y.mean()) ** 2))
    # The unfixed model does not: relu cannot go below 0.
    keras.utils.set_random_seed(3)
    broken = mlp(1, "relu")
    broken.compile(optimizer="adam", loss="mse")
    loss = broken.fit(x, y, batch_size=20, epochs=100, verbose=0).history["loss"][-1]
    assert loss >= float(np.mean(y**2)) * 0.9


def test_a_fix_that_does_not_fit_is_said_to_not_fit(tmp_path, capsys):
    outcome = train(
        tmp_path, capsys, mlp(1, "sigmoid"), "mse", X, HUGE, shuffle=False, overfit_check=True
    )
    message = only_warning(outcome)
    print(message)
    assert "Checked: with a linear output this model" in message
    assert "fits 20 samples in" not in message
    assert "not fit 20 samples" in message


def test_without_overfit_check_nothing_is_claimed_checked(tmp_path, capsys):
    outcome = train(tmp_path, capsys, mlp(1, "relu"), "mse", X, NEGATIVE, shuffle=False)
    message = only_warning(outcome)
    print(message)
    assert "loss_output_mismatch" in message
    assert "Checked" not in message
    assert "(overfit_check=True) would test this change" in message


def test_a_refused_loss_is_not_checked(tmp_path, capsys):
    # Keras refuses class ids for categorical_crossentropy at the first step:
    # no batch is trained, so the sparse loss is suggested but not checked.
    outcome = train(
        tmp_path,
        capsys,
        mlp(3, "softmax"),
        "categorical_crossentropy",
        X,
        CLASSES,
        overfit_check=True,
    )
    assert outcome.error is not None
    assert len(outcome.warnings) == 1
    message = flat(outcome.warnings[0])
    assert "sparse_categorical_crossentropy" in message
    assert "Checked" not in message


@pytest.mark.parametrize("overfit_check", [True, False])
def test_a_healthy_model_gets_no_warning(tmp_path, capsys, overfit_check):
    outcome = train(
        tmp_path,
        capsys,
        mlp(3, "softmax"),
        "sparse_categorical_crossentropy",
        X,
        CLASSES,
        overfit_check=overfit_check,
    )
    assert outcome.error is None
    assert outcome.warnings == []
    assert "Checked" not in outcome.output


def test_the_detector_names_the_change_it_suggests():
    card = {"outputs": [{"name": "out", "shape": [None, 3], "activation": "softmax"}]}
    card["outputs"][0]["loss"] = "categorical_crossentropy"
    ids = {"shape": [None], "dtype": "int32"}
    problem = label_encoding.check(card, ids)
    assert problem is not None and problem.fatal
    assert problem.suggested_fix == {"loss": "sparse_categorical_crossentropy"}
    relu = {"outputs": [{"name": "out", "shape": [None, 1], "activation": "relu", "loss": "mse"}]}
    targets = {"shape": [None], "min": -5.0, "max": -1.0, "mean": -3.0, "count": 32}
    problem = label_encoding.check(relu, targets)
    assert problem is not None and problem.suggested_fix == {"output_activation": "linear"}
    # A fix that changes the data, not the loss or the output, names no change.
    sigmoid = {"name": "out", "shape": [None, 1], "activation": "sigmoid"}
    binary = {"outputs": [{**sigmoid, "loss": "binary_crossentropy"}]}
    coded = {"shape": [None], "min": 1.0, "max": 2.0, "mean": 1.5, "count": 32}
    problem = label_encoding.check(binary, coded)
    assert problem is not None and problem.suggested_fix is None
