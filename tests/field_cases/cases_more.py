"""Field cases: a learning-rate decay schedule (healthy only; see the summary for the
stalled variant and the other threads of this theme that were dropped)."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _digits_onehot():
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1], one-hot labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), np.eye(10, dtype="float32")[y]


# --- Brownlee, "Understand the Impact of Learning Rate...": SGD per-update decay ------


def _sgd_decay(decay: float) -> Training:
    """Dense(50, relu, he_uniform) -> Dense(10, softmax), SGD(0.01, momentum 0.9) whose rate
    falls as 0.01 / (1 + decay * step), Keras 2's per-update `decay` argument."""
    import keras

    x, y = _digits_onehot()
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(50, activation="relu", kernel_initializer="he_uniform"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    rate = keras.optimizers.schedules.InverseTimeDecay(0.01, decay_steps=1, decay_rate=decay)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=rate, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


CASES = [
    FieldCase(
        name="more_sgd_decay_gentle",
        url="https://www.aiproblog.com/index.php/2019/01/24/understand-the-impact-of-learning-rate-on-model-performance-with-deep-learning-neural-networks/",
        summary=(
            "Healthy run from a tutorial (J. Brownlee) on learning-rate effects: an MLP "
            "Dense(50, relu, he_uniform) -> softmax trained with SGD at 0.01 and Keras 2's "
            "per-update `decay`; the author finds the small decays (1e-3, 1e-4) train well and "
            "says decay 1e-1 'decays the learning rate too rapidly'. This is the decay-1e-4 run. "
            "The decay-1e-1 run was dropped: reproduced here (same schedule) its loss keeps "
            "falling 2-4 % per epoch (2.13 -> 1.41, accuracy 0.32 -> 0.76 in 12 epochs): "
            "inverse-time decay slows learning but does not flatten it within a CI-sized run. "
            "Departures: Keras 3 has no `decay` argument, so 0.01 / (1 + 1e-4 * step) is an "
            "InverseTimeDecay schedule; momentum 0.9 (as in a public notebook reproducing this "
            "section; the optimizer line of the tutorial page was not visible to us); 8x8 "
            "digits (10 classes) instead of the tutorial's 3-centre make_blobs, which this MLP "
            "solves to 99 % in one epoch; 12 epochs instead of 200."
        ),
        build=lambda: _sgd_decay(1e-4),
        stalled=False,
    ),
]
