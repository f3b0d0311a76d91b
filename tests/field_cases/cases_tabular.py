"""Field cases: small tabular MLPs whose loss or accuracy does not move."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training


def _keras1_uniform():
    """Keras 1's init='uniform': U(-0.05, 0.05)."""
    import keras

    return keras.initializers.RandomUniform(-0.05, 0.05)


def _packets_like(n: int = 2000, n_features: int = 20, seed: int = 4):
    """A balanced binary task standing in for the asker's tabular file (standardised)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=8,
        class_sep=1.2,
        random_state=seed,
    )
    return x.astype("float32"), y.astype("float32")


def _five_layer_stack(output_activation: str) -> Training:
    """keras#4784: relu/tanh/relu/sigmoid stack, init='uniform', relu or sigmoid output."""
    import keras

    x, y = _packets_like()
    init = _keras1_uniform
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init()),
            keras.layers.Dense(32, activation="tanh", kernel_initializer=init()),
            keras.layers.Dense(12, activation="relu", kernel_initializer=init()),
            keras.layers.Dense(8, activation="sigmoid", kernel_initializer=init()),
            keras.layers.Dense(1, activation=output_activation, kernel_initializer=init()),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


def _two_circles(n: int = 2000, seed: int = 1):
    """make_circles(noise=0.1, factor=0.8) written with numpy, scaled to [-1, 1]."""
    rng = np.random.default_rng(seed)
    half = n // 2
    angles = rng.uniform(0, 2 * np.pi, n)
    radius = np.r_[np.ones(half), np.full(n - half, 0.8)]
    x = np.c_[radius * np.cos(angles), radius * np.sin(angles)]
    x += rng.normal(0, 0.1, x.shape)
    y = np.r_[np.zeros(half), np.ones(n - half)]
    idx = rng.permutation(n)
    x, y = x[idx], y[idx]
    lo, hi = x.min(axis=0), x.max(axis=0)
    x = 2 * (x - lo) / (hi - lo) - 1
    return x.astype("float32"), y.astype("float32")


def _deep_circles(relu: bool) -> Training:
    """Five hidden layers of 5 units: tanh with U(0, 1) kernels, or relu with he_uniform."""
    import keras

    x, y = _two_circles()
    if relu:
        activation, init = "relu", "he_uniform"
    else:
        activation, init = "tanh", keras.initializers.RandomUniform(0.0, 1.0)
    layers = [keras.Input((2,))]
    for _ in range(5):
        layers.append(keras.layers.Dense(5, activation=activation, kernel_initializer=init))
    layers.append(keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 16, "epochs": 15})


def _heart_like(n: int = 1025, seed: int = 7):
    """Standardised 13-feature balanced binary task (the size of the UCI heart set)."""
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=n, n_features=13, n_informative=6, class_sep=1.0, random_state=seed
    )
    return StandardScaler().fit_transform(x).astype("float32"), y.astype("float32")


def _heart_mlp(learning_rate: float) -> Training:
    """64-32-16 ReLU with Dropout after each hidden layer, sigmoid output, Adam."""
    import keras

    x, y = _heart_like()
    model = keras.Sequential(
        [
            keras.Input((13,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 15})


def _breast_cancer_scaled():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(x).astype("float32"), y.astype("float32")


def _breast_cancer_one_sigmoid(loss: str) -> Training:
    """keras#14729's model: 16-16 ReLU, Dropout 0.1, init='uniform', one sigmoid unit."""
    import keras

    x, y = _breast_cancer_scaled()
    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer="uniform"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(16, activation="relu", kernel_initializer="uniform"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(1, activation="sigmoid", kernel_initializer="uniform"),
        ]
    )
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return Training(model, {"x": x, "y": y.reshape(-1, 1), "batch_size": 16, "epochs": 12})


def _iris_tanh_sgd(scaled: bool) -> Training:
    """keras#508: 4-10-10-3 tanh MLP, Dropout 0.5, init='uniform', SGD(0.1, nesterov)."""
    import keras
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    if scaled:
        x = StandardScaler().fit_transform(x)
    y = np.eye(3)[y]
    init = _keras1_uniform
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(10, activation="tanh", kernel_initializer=init()),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="tanh", kernel_initializer=init()),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init()),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return Training(
        model, {"x": x.astype("float32"), "y": y.astype("float32"), "batch_size": 8, "epochs": 15}
    )


CASES = [
    FieldCase(
        name="tab_relu_output_bce",
        url="https://github.com/keras-team/keras/issues/4784",
        summary="TODO",
        build=lambda: _five_layer_stack("relu"),
        stalled=True,
    ),
    FieldCase(
        name="tab_sigmoid_output_bce",
        url="https://github.com/keras-team/keras/issues/4784",
        summary="TODO",
        build=lambda: _five_layer_stack("sigmoid"),
        stalled=False,
        twin_of="tab_relu_output_bce",
    ),
    FieldCase(
        name="tab_deep_tanh_uniform_init",
        url="https://www.aiproblog.com/index.php/2019/01/10/how-to-fix-vanishing-gradients-using-the-rectified-linear-activation-function/",
        summary="TODO",
        build=lambda: _deep_circles(relu=False),
        stalled=True,
    ),
    FieldCase(
        name="tab_deep_relu_he_init",
        url="https://www.aiproblog.com/index.php/2019/01/10/how-to-fix-vanishing-gradients-using-the-rectified-linear-activation-function/",
        summary="TODO",
        build=lambda: _deep_circles(relu=True),
        stalled=False,
        twin_of="tab_deep_tanh_uniform_init",
    ),
    FieldCase(
        name="tab_adam_lr_01",
        url="https://sanaat.mintlify.app/docs/experiments/learning-rate",
        summary="TODO",
        build=lambda: _heart_mlp(0.1),
        stalled=True,
    ),
    FieldCase(
        name="tab_adam_lr_0001",
        url="https://sanaat.mintlify.app/docs/experiments/learning-rate",
        summary="TODO",
        build=lambda: _heart_mlp(0.001),
        stalled=False,
        twin_of="tab_adam_lr_01",
    ),
    FieldCase(
        name="tab_cce_one_sigmoid",
        url="https://github.com/keras-team/keras/issues/17029",
        summary="TODO",
        build=lambda: _breast_cancer_one_sigmoid("categorical_crossentropy"),
        stalled=True,
    ),
    FieldCase(
        name="tab_bce_one_sigmoid",
        url="https://github.com/keras-team/keras/issues/17029",
        summary="TODO",
        build=lambda: _breast_cancer_one_sigmoid("binary_crossentropy"),
        stalled=False,
        twin_of="tab_cce_one_sigmoid",
    ),
    FieldCase(
        name="tab_iris_unscaled_tanh_sgd",
        url="https://github.com/keras-team/keras/issues/508",
        summary="TODO",
        build=lambda: _iris_tanh_sgd(scaled=False),
        stalled=True,
    ),
    FieldCase(
        name="tab_iris_scaled_tanh_sgd",
        url="https://github.com/keras-team/keras/issues/508",
        summary="TODO",
        build=lambda: _iris_tanh_sgd(scaled=True),
        stalled=False,
        twin_of="tab_iris_unscaled_tanh_sgd",
    ),
]
