"""Field cases: the output layer does not fit the loss or the labels."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _binary_sequences(n: int = 2048, seed: int = 0):
    """The thread's task: predict the next bit from the 3 previous ones (here: the
    parity-free rule "majority of the 3 bits", learnable by a small LSTM)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, 3, 1)).astype("float32")
    y = (x.sum(axis=(1, 2)) >= 2).astype("float32").reshape(-1, 1)
    return x, y


def _lstm_next_bit(activation: str) -> Training:
    import keras

    x, y = _binary_sequences()
    model = keras.Sequential(
        [
            keras.Input((3, 1)),
            keras.layers.LSTM(8),
            keras.layers.Dense(1, activation=activation),
        ]
    )
    model.compile(
        optimizer="adagrad" if activation == "softmax" else "adam",
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 64, "epochs": 12})


CASES = [
    FieldCase(
        name="lstm_softmax_one_unit",
        url="https://stackguides.com/questions/46620813/keras-lstm-model-not-learning-binary-sequence",
        summary=(
            "LSTM(1) then Dense(1, activation='softmax') with binary_crossentropy and adagrad: "
            "accuracy 0.4992 every epoch, constant predictions. Answer: softmax over one unit "
            "always outputs 1; use sigmoid. Departures: LSTM(8) instead of LSTM(1), a "
            "generated 'majority of 3 bits' target instead of the asker's sequence, 12 epochs."
        ),
        build=lambda: _lstm_next_bit("softmax"),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=("zero_gradients", "prediction_collapse", "class_imbalance"),
        keras_root=("loss_output_mismatch",),
    ),
    FieldCase(
        name="lstm_sigmoid_one_unit",
        url="https://stackguides.com/questions/46620813/keras-lstm-model-not-learning-binary-sequence",
        summary="Healthy twin: the answer's fix, Dense(1, activation='sigmoid') (and Adam).",
        build=lambda: _lstm_next_bit("sigmoid"),
        stalled=False,
        twin_of="lstm_softmax_one_unit",
    ),
]
