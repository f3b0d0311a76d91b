"""Field cases: regression and reconstruction models.

Targets on a scale the output cannot reach (sigmoid or one-unit softmax heads,
targets in the hundreds of thousands with a linear head), classification losses
on continuous targets, unscaled inputs and targets under plain SGD, and
autoencoders; with the healthy twins (the answers' fixes) and two healthy
regressions. Data: scikit-learn's bundled sets and generators, or numpy.
"""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training

# Statements that are false of every regression run here (no classes exist).
REGRESSION_FALSE = (
    r"class \d+ \(of",
    r"majority-class",
    r"labels are class",
    r"categorical_crossentropy with (one-hot|integer) labels",
)
# A fix proposing softmax for a regression head is false; on the cases whose
# head *is* a softmax the evidence may name it, so only the advice is matched.
NO_SOFTMAX = (r"softmax",)
NO_SOFTMAX_ADVICE = (r"(use|switch to|add|try)\W+(an?\W+)?softmax",)


def _friedman(n: int = 1000, seed: int = 0):
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=n, n_features=10, noise=0.5, random_state=seed)
    return x.astype("float32"), y.astype("float32").reshape(-1, 1)


def _diabetes():
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return x.astype("float32"), y.astype("float32").reshape(-1, 1)


def _mlp(n_in: int, hidden: tuple[int, ...], out_units: int, out_activation: str | None):
    import keras

    layers = [keras.Input((n_in,))]
    layers += [keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(out_units, activation=out_activation))
    return keras.Sequential(layers)


# --- sigmoid output on negative targets -------------------------------------


def _sigmoid_curve(sign: float) -> Training:
    """The thread's data: y = sign / (exp(10 x) + 1) on [-1, 1], one sigmoid unit."""
    import keras

    x = np.linspace(-1, 1, 2048, dtype="float32").reshape(-1, 1)
    y = (sign / (np.exp(10.0 * x) + 1.0)).astype("float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 15, "shuffle": True})


# --- one-unit softmax on probability targets ---------------------------------


def _probability_head(activation: str) -> Training:

    x, y = _friedman()
    y = (y - y.min()) / (y.max() - y.min())
    model = _mlp(x.shape[1], (32,), 1, activation)
    model.compile(optimizer="adam", loss="mse")
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 15})


# --- autoencoder: softmax + binary_crossentropy on unscaled pixels -----------


def _digits_autoencoder(fixed: bool) -> Training:
    from sklearn.datasets import load_digits

    x = load_digits().data.astype("float32")  # pixel values 0..16
    if fixed:
        x = x / 16.0
    model = _mlp(64, (32, 16, 32), 64, "sigmoid" if fixed else "softmax")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return Training(model, {"x": x, "y": x, "batch_size": 100, "epochs": 12})


# --- binary_crossentropy on prices -------------------------------------------


def _price_bce() -> Training:

    x, y = _diabetes()  # targets 25..346
    model = _mlp(x.shape[1], (32, 16), 1, "sigmoid")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 12})


def _price_mse_scaled() -> Training:
    import keras

    x, y = _diabetes()
    y = (y - y.mean()) / y.std()
    model = _mlp(x.shape[1], (32, 16), 1, None)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return Training(model, {"x": x, "y": y, "batch_size": 16, "epochs": 15})


# --- house prices in the hundreds of thousands, linear head ------------------


def _house_prices(scaled: bool) -> Training:

    x, y = _friedman()
    y = 10_000.0 * y + 100_000.0  # mean about 245,000 like the thread's prices
    if scaled:
        y = (y - y.mean()) / y.std()
    model = _mlp(x.shape[1], (32, 16), 1, None)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return Training(model, {"x": x, "y": y.astype("float32"), "batch_size": 32, "epochs": 12})


# --- y = x**4 with inputs in [-100, 100] and a sigmoid layer -----------------


def _x_to_the_fourth(scaled: bool) -> Training:
    import keras

    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 100, size=(2000, 1)).astype("float32")
    y = x**4
    if scaled:
        x, y = x / 100.0, y / 1e8
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(10, activation="sigmoid"),
            keras.layers.Dense(10, activation="elu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.03 if scaled else 0.001), loss="mse")
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 15})


# --- one column predicting another, a single linear unit under SGD -----------


def _one_column_sgd(scaled: bool) -> Training:
    import keras
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data.astype("float32")
    x, y = data[:, [3]], data[:, [2]]  # mean area (143..2501) -> mean perimeter (43..189)
    if scaled:
        x = (x - x.mean()) / x.std()
        y = (y - y.mean()) / y.std()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", metrics=["mse"])
    return Training(model, {"x": x, "y": y, "batch_size": 8, "epochs": 12, "shuffle": False})


# --- two stacked linear units, normalized input, y = x**2 + 3 ----------------


def _two_linear_sgd(scaled: bool) -> Training:
    import keras

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 100, size=(1000, 1)).astype("float32")
    y = x**2 + 3
    x = (x - x.mean()) / x.std()
    if scaled:
        y = (y - y.mean()) / y.std()
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 15})


# --- autoencoder of uniform noise with binary_crossentropy -------------------


def _noise_autoencoder() -> Training:
    import keras

    rng = np.random.default_rng(2)
    x = rng.random((4000, 32)).astype("float32")
    model = _mlp(32, (32, 32), 32, "sigmoid")
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="binary_crossentropy")
    return Training(model, {"x": x, "y": x, "batch_size": 64, "epochs": 15})


# --- healthy regressions -----------------------------------------------------


def _diabetes_scaled() -> Training:
    import keras

    x, y = _diabetes()
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = y / 100.0  # mean 1.5, variance 0.6: the first loss is several times the variance
    model = _mlp(x.shape[1], (32, 16), 1, None)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="mse", metrics=["mae"])
    return Training(model, {"x": x, "y": y, "batch_size": 16, "epochs": 15})


def _friedman_with_accuracy() -> Training:
    import keras

    x, y = _friedman()
    y = y / 10.0  # mean 1.4, variance 0.25
    model = _mlp(x.shape[1], (64, 32), 1, None)
    model.compile(
        optimizer=keras.optimizers.Adam(0.003), loss="mean_squared_error", metrics=["accuracy"]
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 15})


CASES = [
    FieldCase(
        name="reg_sigmoid_negative_targets",
        url="https://codewithsundeep.com/discussion/solution/58887284",
        summary=(
            "One Dense(1, activation='sigmoid') unit, Adam(0.01), mse, fitted to "
            "f(x) = -1/(exp(10x)+1) on 111 points of [-1, 1]: the model does not learn the "
            "curve. Answer (upvoted): a sigmoid outputs only values in (0, 1) and every target "
            "is negative, so the function cannot be learned; learn 1/(exp(10x)+1) instead. "
            "Here the loss creeps toward its floor mean(y**2) ~ 0.45 (0.96 -> 0.47, under 5% "
            "an epoch from epoch 4). Departures: 2048 points instead of 111, batch 32, "
            "15 epochs."
        ),
        build=lambda: _sigmoid_curve(-1.0),
        stalled=True,
        stall_from=4,
        root=("loss_output_mismatch",),
        consequences=(
            "saturated_activations",
            "prediction_collapse",
            "vanishing_gradients",
            "zero_gradients",
        ),
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
        # Labelled after the plain-Keras run was seen (issue 13 counts curve-visible
        # stalls); the reason is what the logged curves show.
        curve_hidden=(
            "the loss falls steadily (0.96 to 0.47), as a slow healthy regression does; "
            "that it is stuck above a floor only the (negative) targets show"
        ),
    ),
    FieldCase(
        name="reg_sigmoid_positive_targets",
        url="https://codewithsundeep.com/discussion/solution/58887284",
        summary="Healthy twin (the fix): targets 1/(exp(10x)+1) inside the sigmoid's range.",
        build=lambda: _sigmoid_curve(1.0),
        stalled=False,
        twin_of="reg_sigmoid_negative_targets",
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_softmax_one_unit_probability",
        url="https://example-a.com/answer/63909566",
        summary=(
            "Regression of probabilities in [0, 1]: Dense(W1, relu) then Dense(1, "
            "activation='softmax'), Adam, mse; the loss does not change at all between epochs. "
            "Accepted answer, confirmed by the asker's edit: softmax over one unit is always 1; "
            "use sigmoid to squash one value into [0, 1]. Departures: make_friedman1 target "
            "min-max scaled to [0, 1] instead of the asker's probabilities, Dense(32), 15 epochs."
        ),
        build=lambda: _probability_head("softmax"),
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=("zero_gradients", "prediction_collapse"),
        keras_root=("loss_output_mismatch",),
        false_text=REGRESSION_FALSE + NO_SOFTMAX_ADVICE,
    ),
    FieldCase(
        name="reg_sigmoid_one_unit_probability",
        url="https://example-a.com/answer/63909566",
        summary="Healthy twin: the accepted answer's fix, Dense(1, activation='sigmoid').",
        build=lambda: _probability_head("sigmoid"),
        stalled=False,
        twin_of="reg_softmax_one_unit_probability",
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_autoencoder_sigmoid_bce_scaled_pixels",
        url="https://stackoverflow.com/questions/52441877/how-does-binary-cross-entropy-loss-work-on-autoencoders/52443301#52443301",
        summary=(
            "Stand-alone healthy autoencoder: the accepted answer's setup (pixels scaled to "
            "[0, 1], sigmoid output, binary_crossentropy) on load_digits, relu 32-16-32, Adam, "
            "12 epochs. The asker's own run (softmax output on raw 0..255 pixels) is not kept: "
            "the thread reports no stall, and reproduced under Keras 3 its loss runs away to "
            "-1e5 (binary_crossentropy is taken from the softmax's logits) instead of stalling."
        ),
        build=lambda: _digits_autoencoder(True),
        stalled=False,
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_bce_on_prices",
        url="https://openillumi.com/en/en-keras-tf-fix-huge-negative-loss-regression",
        summary=(
            "Price prediction following a classification tutorial: binary_crossentropy and "
            "accuracy; the loss is a huge negative number (-117944.75) from the first epoch and "
            "accuracy 3.9e-05, the model does not learn. Answer (Stack Overflow question quoted "
            "by the page): binary_crossentropy is a classification loss; use mse (and a "
            "regression metric) and normalize the target. Departures: load_diabetes "
            "(targets 25..346) instead of the asker's prices, a Dense(1, sigmoid) head as in the "
            "tutorial (the thread's head is not shown), a 32-16 relu MLP, batch 32, 12 epochs. "
            "As in the thread, accuracy is 0 every epoch while the loss runs off to ever larger "
            "negative values (Keras takes the sigmoid's logits, so the loss is unbounded "
            "below): the stall is the flat accuracy."
        ),
        build=_price_bce,
        stalled=True,
        stall_from=0,
        root=("loss_output_mismatch",),
        consequences=(
            "saturated_activations",
            "prediction_collapse",
            "zero_gradients",
            "vanishing_gradients",
        ),
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_mse_on_scaled_prices",
        url="https://openillumi.com/en/en-keras-tf-fix-huge-negative-loss-regression",
        summary=(
            "Healthy twin: the answer's fix, mse with a linear head on the standardized target "
            "(and Adam(0.01))."
        ),
        build=_price_mse_scaled,
        stalled=False,
        twin_of="reg_bce_on_prices",
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_unscaled_house_prices",
        url="https://stats.stackexchange.com/questions/409000/should-we-normalize-target-data-as-well-as-input-data",
        summary=(
            "House prices with mean about $250,000, a single linear output node, Adam: after "
            "2,000 epochs the network was still working its outputs slowly up from zero toward "
            "the mean and the errors stayed huge; setting the output bias to the mean (or "
            "scaling the target) fixed it. The thread's cause: the target is on a scale the "
            "default-initialized linear head reaches only in tiny Adam steps (no code names an "
            "unscaled target: scored for detection only; candidate code 'unscaled_targets'). "
            "Departures: make_friedman1 target mapped to 10,000*y + 100,000 (mean ~245,000), a "
            "32-16 relu MLP, 12 epochs."
        ),
        build=lambda: _house_prices(False),
        stalled=True,
        stall_from=0,
        # unscaled_targets: the code added for this class of case (the thread's cause).
        root=("unscaled_targets",),
        consequences=("learning_rate_too_small", "prediction_collapse", "exploding_gradients"),
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_scaled_house_prices",
        url="https://stats.stackexchange.com/questions/409000/should-we-normalize-target-data-as-well-as-input-data",
        summary="Healthy twin: the same network on the standardized target.",
        build=lambda: _house_prices(True),
        stalled=False,
        twin_of="reg_unscaled_house_prices",
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_x4_unscaled_sigmoid",
        url="http://stackoverflow.com.mevn.net/questions/52800582/why-do-i-fail-to-predict-y-x4-with-keras-y-x3-works",
        summary=(
            "Fitting y = x**4 with x in [-100, 100] (targets up to 1e8) through a sigmoid layer, "
            "an elu layer and a linear output fails (y = x**3 appeared to work). Answer: inputs "
            "of that size saturate the first layer's sigmoid (gradients vanish), and targets of "
            "1e8 need the optimizer to step through ~1e8 with weights of order 0.3; scale inputs "
            "and outputs. Departures: 2000 random points, Dense(10) layers, Adam(0.001), "
            "15 epochs."
        ),
        build=lambda: _x_to_the_fourth(False),
        stalled=True,
        stall_from=0,
        root=("unscaled_inputs", "saturated_activations", "unscaled_targets"),
        consequences=(
            "vanishing_gradients",
            "prediction_collapse",
            "learning_rate_too_small",
            "zero_gradients",
        ),
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_x4_scaled",
        url="http://stackoverflow.com.mevn.net/questions/52800582/why-do-i-fail-to-predict-y-x4-with-keras-y-x3-works",
        summary="Healthy twin: the answer's fix, x / 100 and y / 1e8 (and Adam(0.03): at 0.01 it "
        "sat 6 epochs at the mean before learning).",
        build=lambda: _x_to_the_fourth(True),
        stalled=False,
        twin_of="reg_x4_unscaled_sigmoid",
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_one_column_sgd_nan",
        url="https://stats.stackexchange.com/questions/284189/simple-linear-regression-in-keras",
        summary=(
            "One column of a downloaded dataset predicting another with a single linear "
            "Dense(1), SGD(), mse, batch_size=1: nan loss every epoch; only lr=1e-7 gave a "
            "model. Answer: no normalization was done; standardize x and y (StandardScaler) "
            "and use a normal learning rate. Departures: breast-cancer mean area (143..2501) "
            "predicting mean perimeter (43..189), batch 8 instead of 1, 12 epochs."
        ),
        build=lambda: _one_column_sgd(False),
        stalled=True,
        stall_from=0,
        root=("unscaled_inputs",),
        consequences=("nonfinite_loss", "exploding_gradients", "learning_rate_too_large"),
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_one_column_sgd_standardized",
        url="https://stats.stackexchange.com/questions/284189/simple-linear-regression-in-keras",
        summary="Healthy twin: the answer's fix, x and y standardized, SGD(0.01).",
        build=lambda: _one_column_sgd(True),
        stalled=False,
        twin_of="reg_one_column_sgd_nan",
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_two_linear_sgd_unscaled_target",
        url="https://wiki.hoelee.com/content/stats.stackexchange.com_en_all_2022-05/questions/418955/why-is-deep-neural-net-with-linear-activation-diverges",
        summary=(
            "Two stacked linear Dense(1) layers, SGD, mse, standardized x in 0..99, "
            "y = x**2 + 3 (up to ~9800): the training diverges. The asker's update, matching "
            "the answers: the cause is the unscaled target variable; learning only happens with "
            "a very small learning rate. No code names an unscaled target (root left empty, "
            "candidate 'unscaled_targets'). Departures: 1000 random x instead of arange(100), "
            "batch 32, 15 epochs instead of 300."
        ),
        build=lambda: _two_linear_sgd(False),
        stalled=True,
        stall_from=0,
        root=("unscaled_targets",),
        consequences=("nonfinite_loss", "exploding_gradients", "learning_rate_too_large"),
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_two_linear_sgd_scaled_target",
        url="https://wiki.hoelee.com/content/stats.stackexchange.com_en_all_2022-05/questions/418955/why-is-deep-neural-net-with-linear-activation-diverges",
        summary="Healthy twin: the same network with the target standardized.",
        build=lambda: _two_linear_sgd(True),
        stalled=False,
        twin_of="reg_two_linear_sgd_unscaled_target",
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_noise_autoencoder_bce_floor",
        url="https://stats.stackexchange.com/questions/441750/why-cant-this-autoencoder-reach-zero-loss",
        summary=(
            "Autoencoder of numpy.random.rand(30000, 100) with relu 100-unit layers, a sigmoid "
            "output and binary_crossentropy: the loss stops well above zero. Accepted answer: a "
            "poor match between the inputs and the loss; binary_crossentropy on targets "
            "strictly inside (0, 1) has a non-zero minimum (0.5 per value for uniform noise), so "
            "the loss flattens above zero (mse, or binary targets, reach zero). Departures: "
            "4000 x 32 values, two 32-unit relu layers instead of five 100-unit ones, "
            "Adam(0.003), 15 epochs. Scored as NOT stalled: the answer's point is that the "
            "loss sits at the floor binary_crossentropy can reach on these targets (0.5; the "
            "run ends at 0.544 and still creeps down), so the model is near the best it can "
            "do and a stall flag would mislead. A remark that BCE on non-binary targets has a "
            "non-zero floor would be true (loss_output_mismatch as a warning)."
        ),
        build=_noise_autoencoder,
        stalled=False,
        also_true=("loss_output_mismatch",),
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_diabetes_scaled_healthy",
        url="https://scikit-learn.org/stable/datasets/toy_dataset.html#diabetes-dataset",
        summary=(
            "Stand-alone healthy regression (not from a thread): load_diabetes with "
            "standardized features and target / 100, a 32-16 relu MLP with a linear head, "
            "Adam(0.003), mse; the first loss is several times the target variance."
        ),
        build=_diabetes_scaled,
        stalled=False,
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
    FieldCase(
        name="reg_accuracy_metric_on_regression",
        url="https://openillumi.com/?p=75188",
        summary=(
            "Regression with loss='mean_squared_error' and metrics=['accuracy']: the loss "
            "decreases but accuracy stays at 0.0000e+00, and the asker thought the model was "
            "not learning. Answer: accuracy is a classification metric, continuous predictions "
            "never equal the targets; use mae or no metric. The training is healthy. "
            "Departures: make_friedman1 with target / 10, a 64-32 relu MLP, Adam(0.003)."
        ),
        build=_friedman_with_accuracy,
        stalled=False,
        false_text=REGRESSION_FALSE + NO_SOFTMAX,
    ),
]
