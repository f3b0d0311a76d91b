"""Field cases: recurrent and 1-D convolutional models on sequences and time series."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _price_windows(n: int = 1200, steps: int = 20, seed: int = 0):
    """Windows of 20 steps of 3 standardised indicator series; the target is a "price"
    in the thousands that the window's last indicator values determine."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 3)).astype("float32")
    signal = x[:, -5:, 0].mean(axis=1) - 0.5 * x[:, -5:, 1].mean(axis=1)
    y = (2500.0 + 900.0 * signal + rng.normal(0, 50.0, size=n)).astype("float32")
    return x, y.reshape(-1, 1)


def _lstm_sgd_mae(scaled: bool) -> Training:
    import keras

    x, y = _price_windows()
    if scaled:
        y = (y - y.mean()) / y.std()
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.LSTM(64),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.0008, momentum=0.9, nesterov=True),
        loss="mean_absolute_error",
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


def _indicator_windows(n: int = 1500, seed: int = 0):
    """Windows of 10 steps x 4 standardised indicators; label 1 (about 60 %) when the
    first two indicators' weighted sum over the window exceeds a threshold."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10, 4)).astype("float32")
    score = x[:, :, 0].sum(axis=1) + 0.5 * x[:, :, 1].sum(axis=1)
    y = (score > -1.0).astype("float32").reshape(-1, 1)
    return x, y


def _conv1d_binary(head: str) -> Training:
    import keras

    x, y = _indicator_windows()
    model = keras.Sequential(
        [
            keras.Input((10, 4)),
            keras.layers.Conv1D(16, 4, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.LeakyReLU(),
            keras.layers.Dropout(0.2),
            keras.layers.Conv1D(8, 4, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.LeakyReLU(),
            keras.layers.Dropout(0.2),
            keras.layers.Flatten(),
            keras.layers.Dense(64),
            keras.layers.BatchNormalization(),
            keras.layers.LeakyReLU(),
            keras.layers.Dense(1),
            keras.layers.Activation(head),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 128, "epochs": 12})


def _raw_integer_lag() -> Training:
    """The thread's data: random integers 0-99, target = the value two steps earlier,
    each sample a single time step (so the lag is not in the sample)."""
    import keras

    rng = np.random.default_rng(0)
    series = rng.integers(0, 100, size=2000).astype("float32")
    x = series[2:].reshape(-1, 1, 1)
    y = series[:-2].reshape(-1, 1)
    model = keras.Sequential(
        [keras.Input((None, 1)), keras.layers.SimpleRNN(2), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return Training(model, {"x": x, "y": y, "batch_size": 16, "epochs": 12})


def _masked_ramp() -> Training:
    """Sequences of n_i zeros then ones, Masking(0) + LSTM(10) + Dense(1, relu); the
    target is the share of ones."""
    import keras

    length = 200
    rng = np.random.default_rng(0)
    ones = rng.integers(5, length - 5, size=50)
    x = np.zeros((50, length, 1), dtype="float32")
    for i, k in enumerate(ones):
        x[i, length - k :, 0] = 1.0
    y = x.mean(axis=(1, 2)).reshape(-1, 1)
    model = keras.Sequential(
        [
            keras.Input((length, 1)),
            keras.layers.Masking(mask_value=0.0),
            keras.layers.LSTM(10, activation="tanh", unit_forget_bias=True),
            keras.layers.Dense(1, activation="relu"),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return Training(
        model,
        {"x": x[:45], "y": y[:45], "batch_size": 32, "epochs": 15},
    )


CASES = [
    FieldCase(
        name="seq_lstm_sgd_mae_huge_targets",
        url="https://github.com/keras-team/keras/issues/4563",
        summary=(
            "LSTM(64) -> Dropout(0.3) -> Dense(1) for multiple-sequence time-series regression, "
            "mean_absolute_error, SGD(lr=0.0008, decay=1e-6, momentum=0.9, nesterov=True); "
            "'the Y values I am trying to predict are very high' and the loss stays very high "
            "(or NaN). A participant (Bo604) answered: rescale the values before training; a "
            "second one (patyork) added that long sequences can overflow early in training. "
            "No confirmation from the asker is visible. Departures: 1200 generated windows of "
            "20 steps x 3 standardised indicators (the asker's data is not shown) with a "
            "'price' target around 2500 (std ~500), no decay argument (Keras 3 SGD has none), "
            "no validation split, batch 32, 12 epochs. The MAE falls from 2511 to 2348 in 12 "
            "epochs (6 %) while predictions stay far below the targets."
        ),
        build=lambda: _lstm_sgd_mae(scaled=False),
        stalled=True,
        stall_from=0,
        root=("unscaled_targets",),
        consequences=("learning_rate_too_small", "prediction_collapse", "saturated_activations"),
        keras_root=("unscaled_targets",),
        false_text=(r"class \d+ \(of", r"majority-class", r"imbalanc", r"unscaled input"),
    ),
    FieldCase(
        name="seq_lstm_sgd_mae_scaled_targets",
        url="https://github.com/keras-team/keras/issues/4563",
        summary=(
            "Healthy twin: the answer's fix, targets standardised (zero mean, unit variance); "
            "MAE falls from 0.81 to 0.37 in 12 epochs."
        ),
        build=lambda: _lstm_sgd_mae(scaled=True),
        stalled=False,
        twin_of="seq_lstm_sgd_mae_huge_targets",
    ),
    FieldCase(
        name="seq_conv1d_softmax_one_unit",
        url="https://geek-questions.imtqy.com/articles/1270335/index.html",
        summary=(
            "Copy of the Stack Overflow question 'Why does a binary Keras CNN always predict "
            "1?': about 6000 windows of 10 steps x 4 standardised price features into "
            "Conv1D(16, 4) / BatchNorm / LeakyReLU / Dropout(0.2) x 2 -> Flatten -> Dense(64) "
            "-> Dense(1) -> Activation('softmax'), binary_crossentropy, Adam; the confusion "
            "matrix shows every test window predicted 1. Answer: a softmax over one neuron is "
            "always 1; use sigmoid (no confirmation visible). Departures: 1500 generated "
            "windows (label 1 for about 62 %, from a weighted sum of two features), no "
            "ReduceLROnPlateau(monitor='val_acc') and no validation data, 12 epochs instead "
            "of 100. In Keras 3 binary_crossentropy on a softmax output reads the stored "
            "logit, so the loss falls (0.71 -> 0.19) while accuracy stays at 0.6167 (the "
            "share of 1s) every epoch."
        ),
        build=lambda: _conv1d_binary("softmax"),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=("prediction_collapse", "class_imbalance", "zero_gradients"),
        keras_root=("loss_output_mismatch",),
        false_text=(r"unscaled", r"learning rate .*too (small|low|large|high)"),
    ),
    FieldCase(
        name="seq_conv1d_sigmoid_one_unit",
        url="https://geek-questions.imtqy.com/articles/1270335/index.html",
        summary="Healthy twin: the answer's fix, Activation('sigmoid') on the Dense(1) output.",
        build=lambda: _conv1d_binary("sigmoid"),
        stalled=False,
        twin_of="seq_conv1d_softmax_one_unit",
    ),
    FieldCase(
        name="seq_lstm_masked_ramp",
        url="https://datascience.stackexchange.com/questions/67599/use-lstm-to-predict-the-proportion-of-steps-with-nonzero-feature-values",
        summary=(
            "50 sequences of 2000 steps (n_i zeros then ones), target = share of ones, "
            "Masking(0) -> LSTM(10, tanh, unit_forget_bias=True) -> Dense(1, relu), MSE, "
            "Adam, 45 training samples, default batch size, 50 epochs: every sequence gets "
            "almost the same prediction. Answer: far too little data (45 of 2001 possible "
            "sequences) and too large a batch (2 updates per epoch); train with batch_size=1 "
            "and shuffle (no confirmation visible). No code names 'too few samples / too few "
            "updates'; scored for detection. Departures: 200 steps instead of 2000, 15 "
            "epochs, no validation data. In this reproduction the Dense(1, relu) output is "
            "dead from the first epoch (it outputs 0 for every sequence; MSE frozen at "
            "0.2903), a mechanism consistent with the thread's symptom that the answer did "
            "not name; dead_units/zero_gradients are accepted as true of the run. The "
            "answer's batch_size=1 twin was dropped: it took 125 s and its relu output died "
            "too, so it is not healthy."
        ),
        build=_masked_ramp,
        stalled=True,
        stall_from=0,
        consequences=("prediction_collapse", "no_progress", "dead_units", "zero_gradients"),
        false_text=(r"class \d+ \(of", r"majority-class", r"imbalanc", r"unscaled"),
    ),
]
