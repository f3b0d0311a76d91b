"""Field cases: the optimizer or its learning rate (or a schedule of it) stalls the run."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _digits_images():
    """sklearn's 8x8 digits as (n, 8, 8, 1) images in [0, 1] and one-hot labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    return x, np.eye(10, dtype="float32")[y]


def _digits_flat():
    x, y = _digits_images()
    return x.reshape(len(x), 64), y


def _markov_tokens(n: int = 1200, steps: int = 3, vocab: int = 24, seed: int = 0):
    """Word-level language-model windows from a sparse random Markov chain: inputs are
    `steps` token ids, targets the one-hot next token at every position."""
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(vocab, 0.1), size=vocab)
    stream = [0]
    for _ in range(n * steps + 1):
        stream.append(rng.choice(vocab, p=table[stream[-1]]))
    stream = np.array(stream)
    x = np.stack([stream[i * steps : i * steps + steps] for i in range(n)])
    y = np.stack([stream[i * steps + 1 : i * steps + steps + 1] for i in range(n)])
    return x.astype("int32"), np.eye(vocab, dtype="float32")[y]


def _order_task(n: int = 1024, length: int = 12, vocab: int = 16, seed: int = 0):
    """Token sequences; label 1 when token 1 occurs before token 2 (both appear once)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(3, vocab, size=(n, length))
    y = np.zeros(n, dtype="float32")
    for i in range(n):
        a, b = rng.choice(length, size=2, replace=False)
        x[i, a], x[i, b] = 1, 2
        y[i] = float(a < b)
    return x.astype("int32"), y.reshape(-1, 1)


# --- keras-team/keras#13047: tf.keras Adadelta default learning rate 1e-3 -------------


def _adadelta_cnn(learning_rate: float | None) -> Training:
    import keras

    x, y = _digits_images()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    optimizer = (
        keras.optimizers.Adadelta()
        if learning_rate is None
        else keras.optimizers.Adadelta(learning_rate)
    )
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 128, "epochs": 12})


# --- keras-team/keras#4652: cifar10_cnn with SGD(momentum=0.9, nesterov) at chance ----


def _cifar_style_cnn(optimizer) -> Training:
    import keras

    x, y = _digits_images()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(0.25),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 64, "epochs": 10})


def _sgd_momentum_cnn() -> Training:
    import keras

    return _cifar_style_cnn(keras.optimizers.SGD(learning_rate=0.3, momentum=0.9, nesterov=True))


def _rmsprop_cnn() -> Training:
    import keras

    return _cifar_style_cnn(keras.optimizers.RMSprop(learning_rate=0.03))


# --- rajveermalviya/language-modeling#3: Adam with learning rate 1.0 on an LSTM LM ----


def _lstm_language_model(learning_rate: float) -> Training:
    import keras

    vocab, steps = 24, 3
    x, y = _markov_tokens(n=800, steps=steps, vocab=vocab)
    model = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(vocab, 32),
            keras.layers.LSTM(32, return_sequences=True),
            keras.layers.LSTM(32, return_sequences=True),
            keras.layers.Dropout(0.5),
            keras.layers.TimeDistributed(keras.layers.Dense(vocab)),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 8})


# --- keras-team/keras#10924: ReduceLROnPlateau(factor=0.2, patience=2) every 2 epochs -


def _plateau_mlp(factor: float, patience: int, monitor: str) -> Training:
    import keras
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=800, n_features=20, n_informative=8, flip_y=0.25, random_state=3
    )
    x = StandardScaler().fit_transform(x).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"]
    )
    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor=monitor, factor=factor, patience=patience, min_lr=1e-6
    )
    return Training(
        model,
        {
            "x": x,
            "y": y.astype("float32"),
            "batch_size": 32,
            "epochs": 20,
            "validation_split": 0.25,
            "callbacks": [reduce_lr],
        },
    )


def _plateau_healthy() -> Training:
    """A ReduceLROnPlateau that only fires on a real plateau of the training loss."""
    import keras

    x, y = _digits_flat()
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=3, min_lr=1e-5
    )
    return Training(
        model, {"x": x, "y": y, "batch_size": 32, "epochs": 15, "callbacks": [reduce_lr]}
    )


# --- tensorflow/tensor2tensor#105: transformer without learning-rate warmup -----------


def _tiny_transformer(warmup: bool) -> Training:
    import keras

    length, vocab, dim = 12, 16, 32
    x, y = _order_task(n=512, length=length, vocab=vocab)
    inputs = keras.Input((length,), dtype="int32")
    tokens = keras.layers.Embedding(vocab, dim)(inputs)
    positions = keras.layers.Embedding(length, dim)(keras.ops.arange(length))
    h = tokens + positions
    for _ in range(2):  # post-LN encoder blocks, as in the original transformer
        attended = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8)(h, h)
        h = keras.layers.LayerNormalization()(h + attended)
        ff = keras.layers.Dense(64, activation="relu")(h)
        h = keras.layers.LayerNormalization()(h + keras.layers.Dense(dim)(ff))
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    peak = 1e-2
    if warmup:
        steps = len(x) // 32
        rate = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=steps * 12, warmup_target=peak, warmup_steps=steps * 3
        )
    else:
        rate = peak
    model.compile(
        optimizer=keras.optimizers.Adam(rate, beta_2=0.98),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


# --- stackoverflow 73462535: SGD(1e-3) on softmax + mean squared error ---------------


def _softmax_mse_sgd() -> Training:
    import keras

    x, y = _digits_flat()
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="sigmoid"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-3),
        loss="mean_squared_error",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 1000, "epochs": 15})


LR_TOO_LARGE_FALSE = (r"learning rate[^.]*too (small|low)", r"increase the learning rate")
LR_TOO_SMALL_FALSE = (
    r"learning rate[^.]*too (large|high)",
    r"(lower|reduce|decrease) the learning rate",
)

CASES = [
    FieldCase(
        name="opt_adadelta_default_lr_cnn",
        url="https://github.com/keras-team/keras/issues/13047",
        summary=(
            "The Keras mnist_cnn example (two Conv2D, Dense(128), softmax, categorical "
            "crossentropy, optimizer=Adadelta()) trained under tf.keras stayed far below the "
            "multi-backend Keras result. Maintainer: tf.keras's Adadelta defaults to "
            "learning_rate=1e-3 where Keras used 1.0; Adadelta(1.0) resolved it (confirmed by "
            "the reporter). Departures: sklearn 8x8 digits instead of MNIST, Conv2D(16)/(32) "
            "and Dense(64) instead of 32/64/128, 12 epochs on 1797 images."
        ),
        build=lambda: _adadelta_cnn(None),
        stalled=True,
        stall_from=0,
        root=("learning_rate_too_small",),
        consequences=("vanishing_gradients", "prediction_collapse"),
        keras_root=("learning_rate_too_small",),
        false_text=LR_TOO_SMALL_FALSE,
    ),
    FieldCase(
        name="opt_adadelta_lr_one_cnn",
        url="https://github.com/keras-team/keras/issues/13047",
        summary="Healthy twin: the maintainer's fix, Adadelta(learning_rate=1.0).",
        build=lambda: _adadelta_cnn(1.0),
        stalled=False,
        twin_of="opt_adadelta_default_lr_cnn",
    ),
    FieldCase(
        name="opt_sgd_nesterov_cnn_chance",
        url="https://github.com/keras-team/keras/pull/4652",
        summary=(
            "The cifar10_cnn example with SGD(lr=0.01, decay=1e-6, momentum=0.9, "
            "nesterov=True) stayed at loss 2.303 / accuracy 0.10 (one class) for 35 epochs. "
            "The reporter reduced the learning rate to 0.001 and it trained (val_acc 0.87); "
            "fchollet switched the example's optimizer to RMSprop. Departures: 8x8 digits "
            "instead of CIFAR-10 (so a far smaller net: three Conv2D of 16/16/32, Dense(128)); "
            "learning rate 0.3 instead of 0.01, because at 0.01 this small problem trains; "
            "no decay; batch 64; 10 epochs. Here the run first learns (accuracy 0.39 by epoch 3), "
            "then blows up at epoch 5 into one predicted class at loss 2.32."
        ),
        build=_sgd_momentum_cnn,
        stalled=True,
        stall_from=5,
        root=("learning_rate_too_large",),
        consequences=(
            "dead_units",
            "prediction_collapse",
            "zero_gradients",
            "exploding_gradients",
            "nonfinite_loss",
            "vanishing_gradients",
        ),
        keras_root=("learning_rate_too_large",),
        false_text=LR_TOO_LARGE_FALSE,
    ),
    FieldCase(
        name="opt_rmsprop_cnn_diverges",
        url="https://github.com/keras-team/keras/issues/4897",
        summary=(
            "The cifar10_cnn example with rmsprop (default lr 1e-3) failed to converge while "
            "Adam or SGD(0.01, momentum 0.9) trained; PR #6182 (merged) set RMSprop's "
            "learning rate to 1e-4 because the default was too large for the example. "
            "Departures: 8x8 digits, a small CNN (Conv2D 16/16/32, Dense(128)), learning rate "
            "0.03 instead of 1e-3 (1e-3 trains on this small problem), batch 64, 10 epochs."
        ),
        build=_rmsprop_cnn,
        stalled=True,
        stall_from=1,
        root=("learning_rate_too_large",),
        consequences=(
            "dead_units",
            "prediction_collapse",
            "zero_gradients",
            "exploding_gradients",
            "nonfinite_loss",
            "vanishing_gradients",
        ),
        keras_root=("learning_rate_too_large",),
        false_text=LR_TOO_LARGE_FALSE,
    ),
    FieldCase(
        name="opt_adam_lr_one_lstm_lm",
        url="https://github.com/rajveermalviya/language-modeling/issues/3",
        summary=(
            "Word-level LSTM language model (Embedding, two LSTM(200), Dropout, "
            "TimeDistributed Dense softmax, categorical crossentropy, 3-step windows) trained "
            "with Adam at the config's learning rate 1.0: the loss did not go down. Reporter: "
            "1.0 is far too large for Adam; the default 0.001 trains; the maintainer updated "
            "the config. Departures: a 24-token Markov-chain stream instead of PTB, 32 units "
            "instead of 200, 800 windows, batch 32, 8 epochs, accuracy instead of "
            "categorical_accuracy as the metric name."
        ),
        build=lambda: _lstm_language_model(1.0),
        stalled=True,
        stall_from=1,
        root=("learning_rate_too_large",),
        consequences=(
            "saturated_activations",
            "prediction_collapse",
            "exploding_gradients",
            "zero_gradients",
            "vanishing_gradients",
            "nonfinite_loss",
        ),
        keras_root=("learning_rate_too_large",),
        false_text=LR_TOO_LARGE_FALSE + (r"unscaled",),
    ),
    FieldCase(
        name="opt_adam_default_lstm_lm",
        url="https://github.com/rajveermalviya/language-modeling/issues/3",
        summary="Healthy twin: the thread's fix, Adam at its default learning rate 0.001.",
        build=lambda: _lstm_language_model(1e-3),
        stalled=False,
        twin_of="opt_adam_lr_one_lstm_lm",
    ),
    FieldCase(
        name="opt_reduce_lr_plateau_every_two_epochs",
        url="https://github.com/keras-team/keras/issues/10924",
        summary=(
            "ReduceLROnPlateau(monitor='val_loss', factor=0.2, patience=2, min_lr=1e-6): "
            "after the first plateau the rate was cut again every 2 epochs and training "
            "stopped progressing. Answer: that is how the callback works; with no val_loss "
            "improvement it keeps multiplying by 0.2 every `patience` epochs down to min_lr. "
            "Departures: a noisy make_classification task (25% flipped labels, so val_loss "
            "bottoms out early) with an MLP and Adam(1e-3) instead of the asker's "
            "segmentation net with a dice loss; 800 samples, 20 epochs. The rate is cut at "
            "epochs 9, 11, 13, ... (4e-5 by epoch 11) and the loss is flat from there."
        ),
        build=lambda: _plateau_mlp(0.2, 2, "val_loss"),
        stalled=True,
        stall_from=11,
        root=("learning_rate_too_small",),
        consequences=(),
        keras_root=("learning_rate_too_small",),
        false_text=LR_TOO_SMALL_FALSE,
    ),
    FieldCase(
        name="opt_reduce_lr_plateau_healthy",
        url="https://github.com/keras-team/keras/issues/10924",
        summary=(
            "Healthy control for the thread: ReduceLROnPlateau on the training loss with "
            "factor 0.5 and patience 3 on digits with Adam(1e-3); it converges normally."
        ),
        build=_plateau_healthy,
        stalled=False,
        twin_of="opt_reduce_lr_plateau_every_two_epochs",
    ),
    FieldCase(
        name="opt_transformer_no_warmup",
        url="https://github.com/tensorflow/tensor2tensor/issues/105",
        summary=(
            "transformer_base on a new dataset: the cost stayed above 4 and did not decrease. "
            "Maintainer: use large learning_rate_warmup_steps and a lower rate; the asker "
            "confirmed the warmup fixed it. Departures: a 2-block post-LN Keras encoder "
            "(dim 32, 4 heads) classifying whether token 1 precedes token 2 in 12-token "
            "sequences instead of seq2seq translation; Adam(1e-2, beta_2=0.98) constant "
            "instead of the noam schedule (the rate is larger than the asker's), 512 sequences, "
            "12 epochs."
        ),
        build=lambda: _tiny_transformer(False),
        stalled=True,
        stall_from=1,
        root=("learning_rate_too_large",),
        consequences=("prediction_collapse", "exploding_gradients", "vanishing_gradients"),
        keras_root=("learning_rate_too_large",),
        false_text=LR_TOO_LARGE_FALSE + (r"unscaled",),
    ),
    FieldCase(
        name="opt_transformer_with_warmup",
        url="https://github.com/tensorflow/tensor2tensor/issues/105",
        summary=(
            "Healthy twin: the same encoder with a 3-epoch linear warmup to 1e-2 then cosine "
            "decay (the thread's fix: warmup steps)."
        ),
        build=lambda: _tiny_transformer(True),
        stalled=False,
        twin_of="opt_transformer_no_warmup",
    ),
    FieldCase(
        name="opt_sgd_softmax_mse_tiny_lr",
        url="https://stackoverflow.com/questions/73462535",
        summary=(
            "MLP Dense(128, sigmoid) -> Dense(10, softmax) on 1000 MNIST images, "
            "loss='mean_squared_error', SGD, batch_size=1000: at lr 0.001 the loss changes "
            "incredibly slowly; it needed lr > 1. Answer: a softmax output with MSE gives tiny "
            "gradients (use cross-entropy), which is why such a rate was needed. Departures: "
            "sklearn 8x8 digits (1797 images), 15 epochs (2 steps each)."
        ),
        build=_softmax_mse_sgd,
        stalled=True,
        stall_from=0,
        root=("learning_rate_too_small", "loss_output_mismatch"),
        consequences=("vanishing_gradients", "saturated_activations", "prediction_collapse"),
        keras_root=("learning_rate_too_small", "loss_output_mismatch"),
        false_text=LR_TOO_SMALL_FALSE + (r"unscaled",),
    ),
]
