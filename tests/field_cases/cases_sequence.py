"""Field cases: recurrent and 1-D convolutional models on sequences and time series."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training

VOCAB = 50
GOOD, BAD = 2, 3  # the two "sentiment" tokens; 0 is the padding id


def _token_reviews(n: int, maxlen: int, seed: int = 0):
    """Pre-padded "reviews" of 20-`maxlen` filler token ids holding one GOOD or one BAD
    token at a random place; the label says which."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, maxlen), dtype="int32")
    y = rng.integers(0, 2, size=n)
    for i in range(n):
        length = int(rng.integers(20, maxlen + 1))
        words = rng.integers(4, VOCAB, size=length)
        words[rng.integers(0, length)] = GOOD if y[i] else BAD
        x[i, maxlen - length :] = words
    return x, y.astype("float32").reshape(-1, 1)


def _lstm_activation(activation: str) -> Training:
    """Embedding -> LSTM(100) -> LSTM(10), both with the given cell activation."""
    import keras

    x, y = _token_reviews(512, 60)
    model = keras.Sequential(
        [
            keras.Input((60,), dtype="int32"),
            keras.layers.Embedding(VOCAB, 16),
            keras.layers.LSTM(100, activation=activation, return_sequences=True),
            keras.layers.LSTM(10, activation=activation),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 10})


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


def _masked_ramp(batch_size: int) -> Training:
    """Sequences of n_i zeros then ones, Masking(0) + LSTM(10) + Dense(1, relu); the
    target is the share of ones."""
    import keras

    length = 400
    rng = np.random.default_rng(0)
    ones = rng.integers(10, length - 10, size=50)
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
        {"x": x[:45], "y": y[:45], "batch_size": batch_size, "epochs": 15, "shuffle": True},
    )


CASES = [
    FieldCase(
        name="seq_lstm_relu_nan",
        url="https://kiwix.lema.org/stackoverflow.com_en_all_2023-11/questions/55322991/why-am-i-getting-nan-after-adding-relu-activation-in-lstm",
        summary="TODO",
        build=lambda: _lstm_activation("relu"),
        stalled=True,
        stall_from=0,
        root=("exploding_gradients", "nonfinite_loss"),
    ),
    FieldCase(
        name="seq_lstm_tanh",
        url="https://kiwix.lema.org/stackoverflow.com_en_all_2023-11/questions/55322991/why-am-i-getting-nan-after-adding-relu-activation-in-lstm",
        summary="TODO",
        build=lambda: _lstm_activation("tanh"),
        stalled=False,
        twin_of="seq_lstm_relu_nan",
    ),
    FieldCase(
        name="seq_lstm_sgd_mae_huge_targets",
        url="https://github.com/keras-team/keras/issues/4563",
        summary="TODO",
        build=lambda: _lstm_sgd_mae(scaled=False),
        stalled=True,
        stall_from=0,
        root=("unscaled_targets",),
    ),
    FieldCase(
        name="seq_lstm_sgd_mae_scaled_targets",
        url="https://github.com/keras-team/keras/issues/4563",
        summary="TODO",
        build=lambda: _lstm_sgd_mae(scaled=True),
        stalled=False,
        twin_of="seq_lstm_sgd_mae_huge_targets",
    ),
    FieldCase(
        name="seq_conv1d_softmax_one_unit",
        url="https://geek-questions.imtqy.com/articles/1270335/index.html",
        summary="TODO",
        build=lambda: _conv1d_binary("softmax"),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
    ),
    FieldCase(
        name="seq_conv1d_sigmoid_one_unit",
        url="https://geek-questions.imtqy.com/articles/1270335/index.html",
        summary="TODO",
        build=lambda: _conv1d_binary("sigmoid"),
        stalled=False,
        twin_of="seq_conv1d_softmax_one_unit",
    ),
    FieldCase(
        name="seq_simplernn_raw_integer_lag",
        url="https://datascience.stackexchange.com/questions/28086/learning-a-simple-sequence-with-rnn-keras",
        summary="TODO",
        build=_raw_integer_lag,
        stalled=True,
        stall_from=0,
        root=("unscaled_targets", "unscaled_inputs"),
    ),
    FieldCase(
        name="seq_lstm_masked_ramp_batch32",
        url="https://datascience.stackexchange.com/questions/67599/use-lstm-to-predict-the-proportion-of-steps-with-nonzero-feature-values",
        summary="TODO",
        build=lambda: _masked_ramp(32),
        stalled=True,
        stall_from=0,
    ),
    FieldCase(
        name="seq_lstm_masked_ramp_batch1",
        url="https://datascience.stackexchange.com/questions/67599/use-lstm-to-predict-the-proportion-of-steps-with-nonzero-feature-values",
        summary="TODO",
        build=lambda: _masked_ramp(1),
        stalled=False,
        twin_of="seq_lstm_masked_ramp_batch32",
    ),
]
