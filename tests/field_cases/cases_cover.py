"""Field cases: BatchNormalization.

A BatchNormalization layer trained on batches of one sample: each feature minus
its own batch mean is zero, so the layer outputs its offset `beta` whatever the
input and nothing below it gets a gradient; with the healthy twin (batches of 8).
Data: scikit-learn's bundled digits.
"""

from __future__ import annotations

from field_cases.corpus import FieldCase, Training

_BN_URL = "https://github.com/d2l-ai/d2l-en/issues/1722"


def _digits():
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1], integer labels 0-9."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int32")


def _bn_mlp(batch_size: int) -> Training:
    """Dense -> BatchNormalization -> ReLU -> Dense(10, softmax) on digits."""
    import keras

    x, y = _digits()
    x, y = x[:200], y[:200]
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": batch_size, "epochs": 6})


CASES = [
    FieldCase(
        name="cov_bn_batch_size_one",
        url=_BN_URL,
        summary=(
            "Textbook statement (d2l.ai, Batch Normalization chapter, quoted in the issue): "
            "'if we tried to apply batch normalization with minibatches of size 1, we would "
            "not be able to learn anything ... after subtracting the means, each hidden unit "
            "would take value 0'. The issue's author points out that this holds for "
            "fully-connected layers (per-feature statistics) but not for conv layers, where "
            "the mean is also taken over spatial positions; the thread shows no confirmation "
            "beyond that nuance and no user's failing run. Reproduction: Dense(32) -> "
            "BatchNormalization -> ReLU -> Dense(10, softmax), Adam, sparse CCE, "
            "batch_size=1 on the first 200 digits, 6 epochs: loss 2.304 -> 2.3036, accuracy "
            "0.04-0.10 (chance). Departures: a generated setting (the book's claim, not a "
            "report of a stalled Keras training), sklearn digits instead of the book's "
            "Fashion-MNIST LeNet. No code names 'BatchNormalization on batches of one'; "
            "scored for detection and on the consequences (the Dense kernel and BN gamma get "
            "exactly zero gradient, every input gets the same prediction)."
        ),
        build=lambda: _bn_mlp(batch_size=1),
        stalled=True,
        stall_from=0,
        consequences=(
            "zero_gradients",
            "vanishing_gradients",
            "prediction_collapse",
            "dead_units",
        ),
        false_text=(r"unscaled", r"imbalanc", r"learning rate .*too"),
    ),
    FieldCase(
        name="cov_bn_batch_size_8",
        url=_BN_URL,
        summary="Healthy twin: the same model with batch_size=8.",
        build=lambda: _bn_mlp(batch_size=8),
        stalled=False,
        twin_of="cov_bn_batch_size_one",
    ),
]
