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
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


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


def _binary_vectors(n: int = 2000, n_bits: int = 30, seed: int = 5):
    """Binary input vectors mapped to a real value (a weighted sum with pairwise terms)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, n_bits)).astype("float32")
    w = rng.normal(0, 1, n_bits)
    y = x @ w + 0.5 * (x[:, 0] * x[:, 1] - x[:, 2] * x[:, 3])
    y = (y - y.mean()) / y.std()
    return x, y.astype("float32").reshape(-1, 1)


def _deep_sigmoid_regression(activation: str) -> Training:
    """Four hidden layers of 500 units with sigmoid (or relu), linear output, MSE, SGD."""
    import keras

    x, y = _binary_vectors()
    layers = [keras.Input((x.shape[1],))]
    for _ in range(4):
        layers.append(keras.layers.Dense(500, activation=activation))
    layers.append(keras.layers.Dense(1))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


CASES = [
    FieldCase(
        name="tab_deep_tanh_uniform_init",
        url="https://www.aiproblog.com/index.php/2019/01/10/how-to-fix-vanishing-gradients-using-the-rectified-linear-activation-function/",
        summary=(
            "Tutorial (Jason Brownlee, 'How to Fix Vanishing Gradients Using the Rectified "
            "Linear Activation Function'): two-circles problem (make_circles, noise 0.1, "
            "scaled to [-1, 1]), five hidden Dense(5, tanh) layers with "
            "RandomUniform(0, 1) kernels, sigmoid output, SGD(0.01, momentum=0.9), "
            "binary_crossentropy, 500 epochs: the deeper tanh model stays at about 50 % "
            "accuracy. The author names vanishing gradients and fixes it with ReLU hidden "
            "layers and he_uniform kernels. Departures: the circles are drawn with numpy "
            "(make_circles is not used), 2000 samples all used for training instead of "
            "500/500, batch 32, 12 epochs instead of 500."
        ),
        build=lambda: _deep_circles(relu=False),
        stalled=True,
        stall_from=1,
        root=("vanishing_gradients", "saturated_activations"),
        consequences=("prediction_collapse", "zero_gradients"),
        keras_root=("vanishing_gradients", "saturated_activations"),
        false_text=(r"unscaled", r"imbalanc", r"learning rate .*too (small|large)"),
    ),
    FieldCase(
        name="tab_deep_relu_he_init",
        url="https://www.aiproblog.com/index.php/2019/01/10/how-to-fix-vanishing-gradients-using-the-rectified-linear-activation-function/",
        summary="Healthy twin: the tutorial's fix, ReLU hidden layers with he_uniform kernels.",
        build=lambda: _deep_circles(relu=True),
        stalled=False,
        twin_of="tab_deep_tanh_uniform_init",
    ),
    FieldCase(
        name="tab_adam_lr_01",
        url="https://sanaat.mintlify.app/docs/experiments/learning-rate",
        summary=(
            "Course project documentation (heart-disease UCI, 1025 x 13, balanced): "
            "64-32-16 ReLU MLP with Dropout after each hidden layer, one sigmoid unit, "
            "binary_crossentropy, Adam; the learning-rate experiment reports that lr=0.1 "
            "'failed to learn (~51 % accuracy)' because the steps overshoot and diverge, while "
            "0.001 trains well (~97 %). The author names the cause (learning rate too large); "
            "no third-party confirmation. Departures: make_classification (1025 x 13, 6 "
            "informative) standardised instead of the heart data, dropout rate 0.2 (the page "
            "gives none), batch 32, 15 epochs."
        ),
        build=lambda: _heart_mlp(0.1),
        stalled=True,
        stall_from=3,
        root=("learning_rate_too_large",),
        consequences=(
            "dead_units",
            "prediction_collapse",
            "zero_gradients",
            "exploding_gradients",
        ),
        keras_root=("learning_rate_too_large",),
        false_text=(r"unscaled", r"imbalanc"),
    ),
    FieldCase(
        name="tab_adam_lr_0001",
        url="https://sanaat.mintlify.app/docs/experiments/learning-rate",
        summary="Healthy twin: the page's best setting, Adam(learning_rate=0.001).",
        build=lambda: _heart_mlp(0.001),
        stalled=False,
        twin_of="tab_adam_lr_01",
    ),
    FieldCase(
        name="tab_cce_one_sigmoid",
        url="https://github.com/keras-team/keras/issues/17029",
        summary=(
            "A Keras maintainer (haifeng-jin) filed this: categorical_crossentropy on a "
            "binary task with y_true and y_pred of shape (None, 1) raises no error but every "
            "loss is 0 during training (a one-column probability renormalises to 1), so the "
            "model does not learn; proposed to raise an error. The reproduced model is the "
            "one of keras#14729 ('too low accuracy', whose answer is not visible): breast-"
            "cancer features standardised, Dense(16, relu, init='uniform') -> Dropout(0.1) -> "
            "Dense(16, relu) -> Dropout(0.1) -> Dense(1, sigmoid), categorical_crossentropy, "
            "Adam. Departures: scikit-learn's load_breast_cancer (all 569 rows, no test split) "
            "instead of the asker's data.csv copy of it, batch 16 instead of 100, 12 epochs "
            "instead of 100. Loss is exactly 0 and accuracy 0.3726 (the minority rate) every "
            "epoch."
        ),
        build=lambda: _breast_cancer_one_sigmoid("categorical_crossentropy"),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=("zero_gradients", "prediction_collapse"),
        keras_root=("loss_output_mismatch",),
        false_text=(r"unscaled", r"imbalanc", r"learning rate .*too (small|large)"),
    ),
    FieldCase(
        name="tab_bce_one_sigmoid",
        url="https://github.com/keras-team/keras/issues/17029",
        summary="Healthy twin: binary_crossentropy for the single sigmoid unit.",
        build=lambda: _breast_cancer_one_sigmoid("binary_crossentropy"),
        stalled=False,
        twin_of="tab_cce_one_sigmoid",
    ),
    FieldCase(
        name="tab_iris_unscaled_tanh_sgd",
        url="https://github.com/keras-team/keras/issues/508",
        summary=(
            "Iris (raw features, one-hot labels) into Dense(10, tanh, init='uniform') -> "
            "Dropout(0.5) -> Dense(10, tanh) -> Dropout(0.5) -> Dense(3, softmax), "
            "SGD(lr=0.1, decay=1e-6, momentum=0.9, nesterov=True), categorical_crossentropy: "
            "the model does not converge. The asker's own confirmed fix: feature scaling "
            "(sklearn scaler), after which accuracy reached ~95 %. Departures: all 150 rows "
            "(no 80/20 split), no lr decay, init='uniform' as RandomUniform(-0.05, 0.05), batch "
            "8, 15 epochs. Here accuracy touches 0.63 at epoch 2, then the loss jumps to "
            "~1.5 and accuracy sits at chance (0.28-0.39) from epoch 3; the scaled twin "
            "reaches ~0.8 with the same optimiser. With raw inputs the effective step on the "
            "first layer is too large, so learning_rate_too_large is counted as a consequence."
        ),
        build=lambda: _iris_tanh_sgd(scaled=False),
        stalled=True,
        stall_from=3,
        root=("unscaled_inputs",),
        consequences=(
            "learning_rate_too_large",
            "saturated_activations",
            "prediction_collapse",
            "exploding_gradients",
        ),
        false_text=(r"imbalanc",),
    ),
    FieldCase(
        name="tab_iris_scaled_tanh_sgd",
        url="https://github.com/keras-team/keras/issues/508",
        summary="Healthy twin: the asker's fix, StandardScaler on the iris features.",
        build=lambda: _iris_tanh_sgd(scaled=True),
        stalled=False,
        twin_of="tab_iris_unscaled_tanh_sgd",
    ),
    FieldCase(
        name="tab_deep_sigmoid_regression",
        url="https://ai.stackexchange.com/questions/16557/what-could-be-the-problem-when-a-neural-network-with-four-hidden-layers-with-the",
        summary=(
            "Binary vectors mapped to real-valued outputs with TensorFlow: four hidden layers "
            "of 500 sigmoid units; the network does not learn and has high loss even on the "
            "training data. Answer (John Doucette): a deep all-sigmoid stack shrinks the "
            "back-propagated signal by at most 0.25 per layer, i.e. vanishing gradients "
            "(a comment also suggests scaling the outputs; the answerer says that is not the "
            "root). No confirmation by the asker is visible, and the asker's code is only "
            "described. Departures: 2000 random 30-bit vectors with a standardised linear-"
            "plus-pairwise target, Keras Dense layers with default init, linear output, MSE, "
            "SGD(0.01) (the asker's optimiser is not shown), batch 32, 12 epochs. The loss "
            "sits at 1.01 (the target variance: constant prediction) from epoch 1."
        ),
        build=lambda: _deep_sigmoid_regression("sigmoid"),
        stalled=True,
        stall_from=1,
        root=("vanishing_gradients",),
        consequences=("saturated_activations", "prediction_collapse", "zero_gradients"),
        keras_root=("vanishing_gradients",),
        false_text=(
            r"class \d+ \(of",
            r"majority-class",
            r"imbalanc",
            r"unscaled",
        ),
    ),
    FieldCase(
        name="tab_deep_relu_regression",
        url="https://ai.stackexchange.com/questions/16557/what-could-be-the-problem-when-a-neural-network-with-four-hidden-layers-with-the",
        summary="Healthy twin: the same four 500-unit layers with ReLU.",
        build=lambda: _deep_sigmoid_regression("relu"),
        stalled=False,
        twin_of="tab_deep_sigmoid_regression",
    ),
]
