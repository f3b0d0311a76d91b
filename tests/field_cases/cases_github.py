"""Field cases from GitHub issues (keras-team/keras): loss or accuracy flat, cause named
in the thread by a maintainer, a commenter or the reporter's own confirmed fix."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _binary_table(n_features: int = 106):
    """A binary tabular task standing in for the reporter's 106-column file."""
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=1500,
        n_features=n_features,
        n_informative=10,
        n_redundant=10,
        class_sep=1.0,
        random_state=7,
    )
    x = StandardScaler().fit_transform(x)
    return x.astype("float32"), y.astype("float32")


def _five_layer_binary(head: str) -> Training:
    """keras#4784: five Dense layers (relu, tanh, relu, sigmoid, then `head`) with
    'uniform' initialisation and binary_crossentropy."""
    import keras

    x, y = _binary_table()
    init = keras.initializers.RandomUniform(-0.05, 0.05)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init),
            keras.layers.Dense(32, activation="tanh", kernel_initializer=init),
            keras.layers.Dense(12, activation="relu", kernel_initializer=init),
            keras.layers.Dense(8, activation="sigmoid", kernel_initializer=init),
            keras.layers.Dense(1, activation=head, kernel_initializer=init),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


def _two_class_images(int_division: bool):
    """Digits 0 and 1 as 8x8x1 images stored as integers 0-240 (uint8 screenshots in
    the thread); normalised with integer division (the bug) or true division."""
    from sklearn.datasets import load_digits

    x, y = load_digits(n_class=2, return_X_y=True)
    images = (x * 15).astype("int64").reshape(-1, 8, 8, 1)
    x = (images // 255) if int_division else (images / 255.0)
    return x.astype("float32"), y.astype("int32")


def _small_cnn(int_division: bool) -> Training:
    """keras#255: a small conv net, one-hot labels for two classes, RMSprop."""
    import keras

    x, y = _two_class_images(int_division)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
            keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    y_onehot = keras.utils.to_categorical(y, 2)
    return Training(model, {"x": x, "y": y_onehot, "batch_size": 32, "epochs": 10})


def _linear_regression(learning_rate: float) -> Training:
    """keras#3040: y = 2x for x = 0..199, Dense(1), plain SGD, batch size 1."""
    import keras

    x = np.arange(200, dtype="float32").reshape(-1, 1)
    y = 2.0 * x
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mean_squared_error")
    return Training(model, {"x": x, "y": y, "batch_size": 1, "epochs": 8})


_REGRESSION_FALSE = (r"class \d+ \(of", r"majority-class", r"imbalanc")

CASES = [
    FieldCase(
        name="gh_relu_output_bce",
        url="https://github.com/keras-team/keras/issues/4784",
        summary=(
            "106 features, 0/1 labels; Dense(64 relu)-Dense(32 tanh)-Dense(12 relu)-"
            "Dense(8 sigmoid)-Dense(1, activation='relu') with init='uniform', "
            "binary_crossentropy, SGD(lr=1e-4, momentum=0.4), batch 300: accuracy the same "
            "every epoch. bstriner (commenter): the model does not match the loss, use a "
            "sigmoid output with binary_crossentropy; the reporter confirmed accuracy then "
            "improved. Departures: make_classification (1500 x 106, 10 informative, "
            "standardised) instead of the reporter's file, RandomUniform(-0.05, 0.05) for "
            "'uniform', Adam(1e-3) and batch 32 instead of SGD(1e-4, momentum=0.4) and batch "
            "300 (with the thread's optimizer even the fixed model stays flat in 12 epochs), "
            "12 epochs."
        ),
        build=lambda: _five_layer_binary("relu"),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=(
            "dead_units",
            "zero_gradients",
            "vanishing_gradients",
            "prediction_collapse",
            "saturated_activations",
        ),
        keras_root=("loss_output_mismatch",),
        false_text=(r"unscaled", r"imbalanc"),
    ),
    FieldCase(
        name="gh_sigmoid_output_bce",
        url="https://github.com/keras-team/keras/issues/4784",
        summary="Healthy twin: the answer's fix, Dense(1, activation='sigmoid').",
        build=lambda: _five_layer_binary("sigmoid"),
        stalled=False,
        twin_of="gh_relu_output_bce",
    ),
    FieldCase(
        name="gh_int_division_zero_images",
        url="https://github.com/keras-team/keras/issues/255",
        summary=(
            "Small VGG-like CNN on ~1000 game screenshots of two classes, one-hot labels, "
            "RMSprop: the same loss (11.87, then 17.27) and accuracy 0.5 at every step. "
            "The reporter's own fix: 'When normalizing each pixel to [0, 1], the array was "
            "still int, and each pixel became 0'. Departures: scikit-learn's digits 0 and 1 "
            "(360 8x8x1 images stored as integers 0-240) normalised with integer division "
            "by 255 (every pixel 0), two Conv2D(8) + Dense(16) + Dense(2 softmax), batch "
            "32, 10 epochs; under Keras 3 the loss settles at ln 2 (only the biases can "
            "learn) instead of the thread's clipped 17.27."
        ),
        build=lambda: _small_cnn(int_division=True),
        stalled=True,
        stall_from=1,
        root=("constant_inputs",),
        consequences=(
            "zero_gradients",
            "vanishing_gradients",
            "dead_units",
            "prediction_collapse",
        ),
        false_text=(r"unscaled", r"imbalanc", r"learning rate .*too"),
    ),
    FieldCase(
        name="gh_float_division_images",
        url="https://github.com/keras-team/keras/issues/255",
        summary="Healthy twin: the reporter's fix, pixels converted to float before / 255.",
        build=lambda: _small_cnn(int_division=False),
        stalled=False,
        twin_of="gh_int_division_zero_images",
    ),
    FieldCase(
        name="gh_linear_regression_sgd_nan",
        url="https://github.com/keras-team/keras/issues/3040",
        summary=(
            "Simple linear regression y = 2x for x = 0..199 with Dense(1), "
            "SGD(lr=0.001, decay=1e-6), mean_squared_error, batch_size=1: the weights go "
            "to NaN. The reporter's own conclusion: 'realized my learning rate was too "
            "high' (for inputs and targets of this size). Departures: no decay (removed "
            "from Keras 3 SGD), 8 epochs instead of 1."
        ),
        build=lambda: _linear_regression(1e-3),
        stalled=True,
        stall_from=0,
        root=("learning_rate_too_large", "unscaled_inputs", "unscaled_targets"),
        consequences=("nonfinite_loss", "exploding_gradients"),
        false_text=_REGRESSION_FALSE,
    ),
    FieldCase(
        name="gh_linear_regression_sgd_small_lr",
        url="https://github.com/keras-team/keras/issues/3040",
        summary="Healthy twin: the reporter's fix, a smaller learning rate, SGD(1e-5).",
        build=lambda: _linear_regression(1e-5),
        stalled=False,
        twin_of="gh_linear_regression_sgd_nan",
    ),
]
