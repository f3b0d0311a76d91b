"""Field cases (more2): data bugs (NaN features from a row normalisation, constant labels)."""

from __future__ import annotations

import numpy as np

from field_cases.corpus import FieldCase, Training

N_CLASSES = 6


def _bag_of_words(n: int = 1200, words: int = 200, empty: float = 0.02, seed: int = 0):
    """Citeseer-like binary bag-of-words rows in 6 classes (each class favours its own
    words); a few rows hold no word at all (citeseer's featureless nodes)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, size=n)
    base = np.full((N_CLASSES, words), 0.03)
    for c in range(N_CLASSES):
        base[c, rng.choice(words, size=25, replace=False)] = 0.3
    x = (rng.random((n, words)) < base[y]).astype("float64")
    x[rng.random(n) < empty] = 0.0
    return x, y


def _row_normalised_mlp(zero_nans: bool) -> Training:
    """keras-gat's preprocessing: each feature row divided by its sum (0/0 = NaN on the
    empty rows); optionally the thread's fix, X[np.isnan(X)] = 0."""
    import keras

    x, y = _bag_of_words()
    with np.errstate(invalid="ignore", divide="ignore"):
        x = x / x.sum(axis=1, keepdims=True)
    if zero_nans:
        x[np.isnan(x)] = 0.0
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(32, activation="elu"),
            keras.layers.Dense(N_CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.005),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    y1 = keras.utils.to_categorical(y, N_CLASSES)
    return Training(model, {"x": x.astype("float32"), "y": y1, "batch_size": 64, "epochs": 10})


def _runtimes(n: int = 1500, seed: int = 0):
    """A run-time table: 8 configuration features, log(run time) linear in them
    (mean about 4, spread about 0.6: run times of ~6 to ~600 ms)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    log_runtime = 4.0 + x @ rng.normal(0, 0.2, size=8) + rng.normal(0, 0.2, size=n)
    return x.astype("float32"), np.exp(log_runtime), log_runtime


def _runtime_classifier(log_target: bool) -> Training:
    """The lab's classification task: logistic regression on "run time above the mean
    of log run time". Without the log the raw run times (>= ~5) are all above that
    mean (~4), so every label is 1."""
    import keras

    x, runtime, log_runtime = _runtimes()
    threshold = float(log_runtime.mean())
    target = log_runtime if log_target else runtime
    y = (target > threshold).astype("float32").reshape(-1, 1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(
        optimizer=keras.optimizers.SGD(0.05), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return Training(model, {"x": x, "y": y, "batch_size": 32, "epochs": 10})


_GAT_URL = "https://github.com/danielegrattarola/keras-gat/issues/14"
_LAB_URL = "https://github.com/Smadx/USTC-ML24-Fall/issues/35"

CASES = [
    FieldCase(
        name="more2_gat_nan_features",
        url=_GAT_URL,
        summary=(
            "keras-gat (a Keras graph attention network) trained on citeseer: the training "
            "loss is nan. A participant found NaN in the feature matrix (citeseer has "
            "nodes without any word, and the loader's row normalisation divides their "
            "all-zero rows by 0) and fixed it with X[np.isnan(X)] = 0 after load_data(); the "
            "maintainer confirmed and fixed the loader. Departures: a generated citeseer-like "
            "bag of words (1200 rows, 200 binary words, 6 classes, 2 % empty rows) instead of "
            "citeseer; a Dense(32, elu) -> Dense(6, softmax) MLP instead of the GAT layers "
            "and adjacency matrix (no graph); mini-batches of 64 instead of full-batch "
            "training; Adam(0.005) and categorical cross-entropy as in keras-gat; 10 epochs."
        ),
        build=lambda: _row_normalised_mlp(zero_nans=False),
        stalled=True,
        stall_from=0,
        root=("nonfinite_data",),
        consequences=("nonfinite_loss", "prediction_collapse"),
        false_text=(r"unscaled", r"learning rate .*too (small|low|large|high)", r"imbalanc"),
    ),
    FieldCase(
        name="more2_gat_nan_zeroed",
        url=_GAT_URL,
        summary="Healthy twin: the thread's fix, X[np.isnan(X)] = 0 after row normalisation.",
        build=lambda: _row_normalised_mlp(zero_nans=True),
        stalled=False,
        twin_of="more2_gat_nan_features",
    ),
    FieldCase(
        name="more2_runtime_labels_all_one",
        url=_LAB_URL,
        summary=(
            "Course lab (USTC ML 2024, lab 1): logistic regression classifying GPU kernels "
            "as slow/fast by 'Run_time above the mean'; the student's loss is 0 and accuracy "
            "1 throughout. The TA's answer: the Run_time column was not log-transformed for "
            "the classification task, so every sample's label is 1 (the threshold is the "
            "mean of the log run time). No confirmation from the asker is visible (they "
            "report a different problem after the change). Departures: the lab's model is "
            "numpy logistic regression with its own GD optimiser; here Keras Dense(1, "
            "sigmoid) with SGD(0.05); 1500 generated rows of 8 features with log run time "
            "linear in them (mean ~4, so every raw run time, 7.7 ms or more, is above it) "
            "instead of the lab's GPU table; batch 32, 10 epochs. Under Keras the loss does "
            "not sit at 0 but shrinks (0.59 -> 0.05) as the bias grows, while accuracy is 1.0 "
            "from epoch 3 (0-based): labelled stalled because the run learns nothing about the "
            "features."
        ),
        build=lambda: _runtime_classifier(log_target=False),
        stalled=True,
        stall_from=0,
        root=("constant_labels",),
        consequences=(
            "prediction_collapse",
            "class_imbalance",
            "saturated_activations",
            "zero_gradients",
        ),
        false_text=(r"unscaled", r"learning rate .*too (small|low|large|high)"),
        # Labelled after the plain-Keras run was seen (issue 13 counts curve-visible
        # stalls); the reason is what the logged curves show.
        curve_hidden=(
            "every label is 1, so the loss falls and the accuracy reaches 1.0: "
            "healthy-looking curves; only the labels show it"
        ),
    ),
    FieldCase(
        name="more2_runtime_labels_log",
        url=_LAB_URL,
        summary="Healthy twin: the TA's fix, labels from the log run time (balanced classes).",
        build=lambda: _runtime_classifier(log_target=True),
        stalled=False,
        twin_of="more2_runtime_labels_all_one",
    ),
]
