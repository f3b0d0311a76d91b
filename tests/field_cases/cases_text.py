"""Field cases: text and sequence models (Embedding + LSTM, padding, sequence regression)."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training

VOCAB = 40
GOOD, BAD = 2, 3  # the two "sentiment" tokens; 0 is the padding id


def _token_sentences(n: int, maxlen: int, padding: str, seed: int = 0):
    """Short "reviews" of 4-12 token ids (4..VOCAB-1 are filler words), each holding
    one GOOD or one BAD token at a random place; the label says which. Padded with 0
    to `maxlen` at the end ("post", what TextVectorization does) or at the front ("pre",
    the pad_sequences default)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, maxlen), dtype="int32")
    y = rng.integers(0, 2, size=n)
    for i in range(n):
        length = int(rng.integers(4, 13))
        words = rng.integers(4, VOCAB, size=length)
        words[rng.integers(0, length)] = GOOD if y[i] else BAD
        if padding == "post":
            x[i, :length] = words
        else:
            x[i, maxlen - length :] = words
    return x, y.astype("float32").reshape(-1, 1)


def _lstm_padding(padding: str) -> Training:
    import keras

    x, y = _token_sentences(512, 100, padding)
    model = keras.Sequential(
        [
            keras.Input((100,), dtype="int32"),
            keras.layers.Embedding(VOCAB, 16),
            keras.layers.LSTM(8),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 64, "epochs": 10})


def _binary_rows(n: int, steps: int, seed: int = 0):
    """Rows of binary features read as a sequence; label 1 when most of the last 5 are 1."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, steps, 1)).astype("float32")
    y = (x[:, -5:, 0].sum(axis=1) >= 3).astype("float32").reshape(-1, 1)
    return x, y


def _stateful_lstm(activation: str) -> Training:
    import keras

    x, y = _binary_rows(512, 16)
    model = keras.Sequential(
        [
            keras.Input((16, 1), batch_size=32),
            keras.layers.LSTM(16, stateful=True),
            keras.layers.Dense(1, activation=activation),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 10})


def _continuous_targets_accuracy() -> Training:
    """The answer's own demonstration: two Gaussian clouds of sequences, continuous
    targets in [0, 0.5) and [0.5, 1), an LSTM(3) regressor reporting 'accuracy'."""
    import keras

    rng = np.random.default_rng(123)
    n, seq_len, dim = 600, 10, 2
    x0 = rng.normal(0, 1, size=(n // 2, seq_len, dim))
    x1 = rng.normal(1, 1, size=(n // 2, seq_len, dim))
    y0 = rng.integers(0, 50, size=(n // 2, 1)) / 100
    y1 = 0.5 + rng.integers(0, 50, size=(n // 2, 1)) / 100
    p = rng.permutation(n)
    x = np.concatenate([x0, x1])[p].astype("float32")
    y = np.concatenate([y0, y1])[p].astype("float32")
    model = keras.Sequential(
        [
            keras.Input((None, dim)),
            keras.layers.LSTM(3),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


CASES = [
    FieldCase(
        name="text_lstm_post_padding",
        url="https://github.com/keras-team/keras/issues/20898",
        summary=(
            "The keras.io 'text classification from scratch' example with its Conv1D and "
            "GlobalMaxPooling1D replaced by an LSTM: TextVectorization post-pads, the LSTM "
            "reads hundreds of padding steps after the words, and train/val accuracy stay "
            "around 0.50. The asker found that LSTM(go_backwards=True) (i.e. the words last, "
            "as with pad_sequences' default pre-padding) learns at once; cause: the signal "
            "is washed out by the trailing padding (no mask). No code names this cause "
            "(missing: e.g. 'padding_position'). Departures: generated reviews of 4-12 "
            "token ids with one GOOD/BAD token instead of IMDB text, 120 positions instead "
            "of 500, Embedding(40, 16) + LSTM(8) instead of the example's sizes, 512 "
            "samples, 10 epochs, no validation set."
        ),
        build=lambda: _lstm_padding("post"),
        stalled=True,
        stall_from=0,
        root=(),
        consequences=("prediction_collapse", "vanishing_gradients", "no_progress"),
        false_text=(r"divide .*by 255", r"unscaled", r"standardi[sz]e"),
    ),
    FieldCase(
        name="text_lstm_pre_padding",
        url="https://github.com/keras-team/keras/issues/20898",
        summary=(
            "Healthy twin: the same reviews pre-padded (pad_sequences' default; the issue's "
            "working Bidirectional-LSTM example and go_backwards=True both put the words "
            "next to the LSTM's last step)."
        ),
        build=lambda: _lstm_padding("pre"),
        stalled=False,
        twin_of="text_lstm_post_padding",
    ),
    FieldCase(
        name="text_stateful_lstm_softmax_one_unit",
        url="https://stackoverflow.com/questions/47241622/is-it-okay-to-use-stateful-recurrent-nn-lstm-for-classification",
        summary=(
            "Rows of 128 binary features fed as a sequence to LSTM(128, stateful=True, "
            "batch_input_shape=(200, ...)) then Dense(1, activation='softmax') with "
            "binary_crossentropy and Adam: accuracy never above 55% (an MLP gets 97%). "
            "Accepted answer (thanked by the asker): softmax over a single unit always "
            "outputs 1; use sigmoid. In Keras 3 binary_crossentropy on a softmax output "
            "uses the stored pre-softmax logits, so the loss still falls a little while the "
            "prediction stays 1 and accuracy is frozen at the share of positives. "
            "Departures: 512 generated rows of 16 bits with the label 'most of the last 5 "
            "bits are 1' instead of the asker's 50,000 x 128 rows, labels 0/1 instead of "
            "the thread's -1/1 (which the answer did not address), LSTM(16), batch 32, 10 "
            "epochs instead of 1, no validation set."
        ),
        build=lambda: _stateful_lstm("softmax"),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=("zero_gradients", "prediction_collapse", "class_imbalance"),
        keras_root=("loss_output_mismatch",),
        false_text=(r"unscaled", r"learning rate .*too (small|low)"),
    ),
    FieldCase(
        name="text_stateful_lstm_sigmoid",
        url="https://stackoverflow.com/questions/47241622/is-it-okay-to-use-stateful-recurrent-nn-lstm-for-classification",
        summary="Healthy twin: the accepted answer's fix, Dense(1, activation='sigmoid').",
        build=lambda: _stateful_lstm("sigmoid"),
        stalled=False,
        twin_of="text_stateful_lstm_softmax_one_unit",
    ),
    FieldCase(
        name="text_lstm_regression_accuracy_metric",
        url="https://datascience.stackexchange.com/questions/49109/loss-val-loss-are-decreasing-but-accuracies-are-the-same-in-lstm",
        summary=(
            "Not a stall: an LSTM regressor whose loss falls from 12 to < 0.01 while "
            "'accuracy' stays at 0.024 (train) and 0 (val). Answer: the targets are "
            "continuous, so Keras' accuracy (rounded prediction == target) is meaningless; "
            "ignore it or binarize the targets. Reproduced with the answer's own "
            "demonstration code (two Gaussian clouds of 10x2 sequences, continuous targets, "
            "LSTM(3) + Dense(1, sigmoid), MSE, Adam). Departures: Keras 3 API, 600 samples instead "
            "of 1000, 12 epochs, batch 32. Healthy: the flat accuracy must not be read as a stall."
        ),
        build=_continuous_targets_accuracy,
        stalled=False,
        false_text=(r"class \d+ \(of", r"majority", r"imbalance"),
    ),
]
