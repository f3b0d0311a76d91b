"""The general rules the field-case corpus (tests/field_cases) taught the diagnosis,
each on a hand-built run so a regression names the rule that broke.

The corpus itself (test_field_cases.py) checks them on real trainings; these say
what each rule is and fail fast without TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
from analysis_helpers import card, codes, finding, keras_run, make_run

from tb_stagnation.analysis.report import analyze_run
from tb_stagnation.analysis.run_data import SOURCE_KERAS
from tb_stagnation.reader import keras_config
from tb_stagnation.summary import tags

COUNTS2 = [500.0, 500.0]


def analyzed(run):
    report = analyze_run(run)
    return report


def regression_card(**extra):
    layers = [
        {"name": "dense", "type": "Dense", "activation": "relu", "trainable": True,
         "params": 352, "trainable_params": 352},
        {"name": "out", "type": "Dense", "activation": "linear", "trainable": True,
         "params": 33, "trainable_params": 33},
    ]  # fmt: skip
    return card(loss="mean_squared_error", activation="linear", width=1, layers=layers,
                task="regression", **extra)  # fmt: skip


def test_regression_falling_fast_above_the_baseline_is_progress():
    # First loss several times the label variance (0.05), falling 30-40% an epoch.
    loss = [0.37, 0.24, 0.15, 0.11, 0.08, 0.06, 0.045, 0.04]
    run = make_run(loss, model_card=regression_card(), scalars={tags.LABEL_VARIANCE: 0.05})
    report = analyzed(run)
    assert report["stalled_epochs"] == []


def test_regression_creeping_towards_the_mean_is_a_stall():
    # A linear head learning the mean of large targets: ~1% an epoch, far above variance.
    loss = [2.0e4 * 0.99**i for i in range(10)]
    run = make_run(
        loss,
        model_card=regression_card(),
        scalars={tags.LABEL_VARIANCE: 5.0e3, tags.LABEL_MEAN: 140.0},
    )
    report = analyzed(run)
    assert report["stalled_epochs"][:1] == [0]
    top = report["findings"][0]
    assert top["code"] == "unscaled_targets"
    assert "mean 140" in top["evidence"]


def test_learned_then_stopped_by_a_rate_cut_is_flagged_from_the_cut():
    loss = [0.69, 0.40, 0.25, 0.16, 0.10, 0.0995, 0.0994, 0.0994, 0.0994, 0.0994]
    acc = [0.55, 0.80, 0.90, 0.94, 0.96, 0.96, 0.96, 0.96, 0.96, 0.96]
    lr = [1e-3] * 5 + [1e-7] * 5
    report = analyzed(make_run(loss, acc=acc, lr=lr, counts=COUNTS2, model_card=card(width=2)))
    assert report["stalled_epochs"] == [5, 6, 7, 8, 9]
    assert report["findings"][0]["code"] == "learning_rate_too_small"


def test_converged_then_rate_cut_after_the_plateau_is_healthy():
    # ReduceLROnPlateau's way: the rate is cut after the loss stopped improving.
    loss = [0.69, 0.30, 0.12, 0.08, 0.07, 0.069, 0.069, 0.069, 0.069, 0.069]
    acc = [0.55, 0.85, 0.95, 0.97, 0.975, 0.975, 0.975, 0.975, 0.975, 0.975]
    lr = [1e-3] * 6 + [1e-4, 1e-4, 1e-5, 1e-6]
    report = analyzed(make_run(loss, acc=acc, lr=lr, counts=COUNTS2, model_card=card(width=2)))
    assert report["healthy"], report["findings"]


def test_updates_shrinking_geometrically_at_an_optimum_are_not_a_stop():
    loss = [1.83, 0.20, 0.066, 0.0596, 0.0593] + [0.0593] * 6
    ratio = [0.8, 0.2, 0.047, 0.009, 0.0016, 3e-4, 6e-5, 3e-5, 3e-5, 3e-5, 3e-5]
    run = make_run(
        loss,
        model_card=regression_card(),
        scalars={tags.LABEL_VARIANCE: 1.0, tags.UPDATE_GLOBAL_RATIO: ratio},
    )
    # make_run broadcasts scalars; give the update ratio its per-epoch values.
    run.scalars[tags.UPDATE_GLOBAL_RATIO] = np.array(ratio)
    assert analyzed(run)["healthy"]


def test_collapsed_predictions_right_after_initialisation_do_not_block_progress():
    # The README's 2-class MLP: every probe sample in one class at first.
    loss = [0.726, 0.70, 0.68, 0.66, 0.645, 0.632]
    acc = [0.49, 0.55, 0.60, 0.63, 0.65, 0.67]
    top = [1.0, 1.0, 0.9, 0.8, 0.75, 0.7]
    run = make_run(loss, acc=acc, counts=COUNTS2, model_card=card(width=2))
    run.scalars[tags.PRED_TOP_CLASS_SHARE] = np.array(top)
    assert analyzed(run)["stalled_epochs"] == []


def test_learning_rate_too_large_explains_the_units_it_killed():
    loss = [9.0] + [0.6931] * 9
    acc = [0.5] * 10
    lr = [1.0] * 10
    dead = np.tile([1.0, 0.2], (10, 1))
    report = analyzed(
        make_run(
            loss,
            acc=acc,
            lr=lr,
            counts=COUNTS2,
            model_card=card(width=2),
            layer_stats={tags.LAYER_DEAD_FRACTION: dead},
        )
    )
    ranked = codes(report)
    assert ranked[0] == "learning_rate_too_large", ranked
    assert finding(report, "dead_units")["explained_by"] == "learning_rate_too_large"


def test_regression_targets_into_a_binary_loss_get_no_class_statistics():
    layers = [
        {"name": "out", "type": "Dense", "activation": "sigmoid", "trainable": True,
         "params": 11, "trainable_params": 11},
    ]  # fmt: skip
    model_card = card(loss="binary_crossentropy", activation="sigmoid", width=1, layers=layers)
    run = make_run([-50.0 * i for i in range(8)], acc=[0.0] * 8, model_card=model_card)
    run.class_counts = np.tile([0.0, 4420.0], (8, 1))
    run.preflight = {
        "labels": {"shape": [None, 1], "count": 32, "min": 25.0, "max": 346.0, "mean": 152.0,
                   "non_integer": 0},
    }  # fmt: skip
    report = analyzed(run)
    text = " ".join(f["evidence"] + " " + f["fix"] for f in report["findings"])
    assert "class 1 (of 2)" not in text and "majority" not in text
    assert "softmax" not in finding(report, "loss_output_mismatch")["fix"]
    assert report["baselines"]["majority_rate"] is None
    assert "constant_labels" not in codes(report)


def test_token_ids_into_an_embedding_are_not_unscaled_inputs():
    layers = [
        {"name": "embedding", "type": "Embedding", "activation": None, "trainable": True,
         "params": 64000, "trainable_params": 64000},
        {"name": "out", "type": "Dense", "activation": "sigmoid", "trainable": True,
         "params": 65, "trainable_params": 65},
    ]  # fmt: skip
    model_card = card(loss="binary_crossentropy", activation="sigmoid", width=1, layers=layers)
    run = make_run(
        [0.6931] * 8,
        acc=[0.5] * 8,
        counts=COUNTS2,
        model_card=model_card,
        scalars={tags.INPUT_MAX_ABS: 9999.0, tags.INPUT_MEAN: 500.0, tags.INPUT_STD: 900.0},
    )
    assert "unscaled_inputs" not in codes(analyzed(run))


def test_unknown_output_activation_is_not_called_linear():
    model_card = card(activation=None)
    model_card["outputs"][0]["activation"] = None
    run = make_run([1.0986] * 8, acc=[0.33] * 8, counts=[1, 1, 1], model_card=model_card)
    report = analyzed(run)
    assert "loss_output_mismatch" not in codes(report)


def test_dropout_near_one():
    model_card = card(dropout=[{"name": "dropout", "type": "Dropout", "kind": "rate",
                                "rate": 0.99}])  # fmt: skip
    report = analyzed(make_run([2.30] * 8, acc=[0.1] * 8, counts=[1] * 10, model_card=model_card))
    top = report["findings"][0]
    assert top["code"] == "dropout_too_high" and "dropout rate=0.99" in top["evidence"]


def test_intentionally_frozen_base_with_a_learning_head_is_not_blamed():
    layers = [
        {"name": "base", "type": "Conv2D", "activation": "relu", "trainable": False,
         "params": 10000, "trainable_params": 0},
        {"name": "head", "type": "Dense", "activation": "softmax", "trainable": True,
         "params": 99, "trainable_params": 99},
    ]  # fmt: skip
    ratio = np.tile([0.0, 0.05], (8, 1))
    run = make_run(
        [1.0986] * 8,
        acc=[0.33] * 8,
        counts=[1, 1, 1],
        model_card=card(layers=layers),
        layer_stats={tags.LAYER_UPDATE_RATIO: ratio},
    )
    assert "frozen_layers" not in codes(analyzed(run))


def test_zero_gradients_in_most_but_not_all_stalled_epochs():
    norms = np.tile([0.0, 0.1], (12, 1))
    norms[[0, 5, 11], 0] = 1e-3
    run = make_run(
        [1.0986] * 12,
        acc=[0.33] * 12,
        counts=[1, 1, 1],
        model_card=card(),
        layer_stats={tags.LAYER_GRAD_NORM: norms},
    )
    zero = finding(analyzed(run), "zero_gradients")
    assert zero["epochs"] == [1, 2, 3, 4, 6, 7, 8, 9, 10]  # exactly the zero ones


def test_one_hot_labels_into_sigmoid_units_are_not_class_imbalance():
    layers = [
        {"name": "out", "type": "Dense", "activation": "sigmoid", "trainable": True,
         "params": 110, "trainable_params": 110},
    ]  # fmt: skip
    model_card = card(loss="binary_crossentropy", activation="sigmoid", width=10, layers=layers)
    loss = [0.33, 0.25, 0.20, 0.17, 0.15, 0.13, 0.12, 0.11]
    acc = [0.90, 0.91, 0.93, 0.94, 0.95, 0.96, 0.965, 0.97]
    report = analyzed(make_run(loss, acc=acc, counts=[9000.0, 1000.0], model_card=model_card))
    assert "class_imbalance" not in codes(report)
    assert report["healthy"]


def test_class_weighted_run_is_judged_from_its_curve():
    model_card = card(width=2, sample_weighted=True)
    loss = [1.34, 1.2, 1.1, 1.0, 0.93, 0.87, 0.82, 0.78]
    acc = [0.22, 0.35, 0.5, 0.6, 0.7, 0.77, 0.81, 0.84]
    report = analyzed(make_run(loss, acc=acc, counts=[950.0, 50.0], model_card=model_card))
    assert report["healthy"], report["findings"]


def test_negative_crossentropy_is_a_stall_and_a_mismatch():
    loss = [0.09 - 10.0 * i for i in range(10)]
    report = analyzed(keras_run(loss, acc=[0.3333] * 10))
    assert report["stalled_epochs"]
    layers = [
        {"name": "out", "type": "Dense", "activation": "sigmoid", "trainable": True,
         "params": 65, "trainable_params": 65},
    ]  # fmt: skip
    run = make_run(loss, acc=[0.3333] * 10, source=SOURCE_KERAS,
                   model_card=card(loss="binary_crossentropy", activation="sigmoid", width=1,
                                   layers=layers))  # fmt: skip
    mismatch = finding(analyzed(run), "loss_output_mismatch")
    assert "cannot be negative" in mismatch["evidence"]


def test_keras_only_accuracy_frozen_for_many_epochs_is_a_stall():
    # A softmax over one unit: the loss falls, no prediction ever changes.
    loss = [0.689, 0.64, 0.60, 0.57, 0.54, 0.52, 0.50, 0.49, 0.48, 0.47]
    report = analyzed(keras_run(loss, acc=[0.4746] * 10))
    assert report["stalled_epochs"] == list(range(10))
    # A converged model at 100% and a regression's "accuracy" of 0 are left alone.
    assert analyzed(keras_run(loss, acc=[1.0] * 10))["stalled_epochs"] == []
    assert analyzed(keras_run(loss, acc=[0.0] * 10))["stalled_epochs"] == []


def test_keras_only_extreme_rate_from_the_config_explains_a_mid_zone_plateau():
    model_card = {"source": keras_config.CARD_SOURCE, "loss": "sparse_categorical_crossentropy",
                  "optimizer": {"class": "Adam", "learning_rate": 1.0},
                  "output_shape": [None, 40], "output_activation": "softmax",
                  "outputs": [{"name": "out", "shape": [None, 40], "activation": "softmax"}],
                  "layers": [{"name": "out", "type": "Dense", "activation": "softmax",
                              "trainable": True}]}  # fmt: skip
    loss = [4.10, 3.10, 3.09, 3.09, 3.09, 3.09, 3.09, 3.09]
    acc = [0.05, 0.10, 0.11, 0.10, 0.11, 0.10, 0.11, 0.10]
    run = make_run(loss, acc=acc, lr=1.0, source=SOURCE_KERAS, model_card=model_card)
    report = analyzed(run)
    assert report["stalled_epochs"]
    assert report["findings"][0]["code"] == "learning_rate_too_large"


def test_keras_config_to_model_card():
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "trainable": True,
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "input"}},
                {"class_name": "Sequential", "config": {"name": "base", "trainable": False,
                 "layers": [{"class_name": "Conv2D", "config": {"name": "c", "filters": 8,
                             "activation": "relu", "trainable": True,
                             "kernel_initializer": {"class_name": "GlorotUniform"}}}]}},
                {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.9}},
                {"class_name": "Dense", "config": {"name": "d", "units": 1,
                 "activation": "linear", "trainable": True,
                 "kernel_initializer": {"class_name": "Zeros"}}},
                {"class_name": "Activation", "config": {"name": "act", "activation": "softmax"}},
            ],
        },
        "compile_config": {
            "loss": {"class_name": "BinaryCrossentropy", "config": {"from_logits": True}},
            "optimizer": {"class_name": "Adadelta", "config": {"learning_rate": 0.001}},
        },
    }  # fmt: skip
    model_card = keras_config.model_card(config)
    assert model_card["loss"] == "binary_crossentropy"
    assert model_card["outputs"][0]["from_logits"] is True
    assert model_card["output_activation"] == "softmax" and model_card["output_shape"] == [None, 1]
    assert [(layer["name"], layer["trainable"]) for layer in model_card["layers"]] == [
        ("c", False),
        ("d", True),
    ]
    assert model_card["layers"][1]["kernel_initializer"] == "Zeros"
    assert model_card["dropout"] == [
        {"name": "drop", "type": "Dropout", "kind": "rate", "rate": 0.9}
    ]
    assert model_card["optimizer"] == {"class": "Adadelta", "learning_rate": 0.001}
    for hostile in (None, [], {"config": {"layers": "x"}}, {"config": {"layers": [1, None]}}):
        assert keras_config.model_card(hostile) is None


def test_adadelta_at_keras_3_default_rate_is_too_small():
    model_card = card(optimizer="Adadelta", learning_rate=0.001)
    report = analyzed(
        make_run([2.3026] * 10, acc=[0.1] * 10, lr=0.001, counts=[1] * 10, model_card=model_card)
    )
    top = report["findings"][0]
    assert top["code"] == "learning_rate_too_small"
    assert "designed for" in top["evidence"]
    assert math.isclose(report["baselines"]["constant_loss"], math.log(10), rel_tol=1e-3)


def test_inputs_never_centred_that_saturate_the_first_layer_are_unscaled():
    # Raw iris-like features (mean 3.5, std 2, max 7.9) into a tanh layer that saturates.
    layers = [
        {"name": "hidden", "type": "Dense", "activation": "tanh", "trainable": True,
         "params": 40, "trainable_params": 40},
        {"name": "out", "type": "Dense", "activation": "softmax", "trainable": True,
         "params": 27, "trainable_params": 27},
    ]  # fmt: skip
    scalars = {tags.INPUT_MAX_ABS: 7.9, tags.INPUT_MEAN: 3.46, tags.INPUT_STD: 2.04}
    saturated = np.tile([0.8, 0.0], (10, 1))
    run = make_run(
        [1.0986] * 10,
        acc=[0.33] * 10,
        counts=[1, 1, 1],
        model_card=card(layers=layers),
        scalars=scalars,
        layer_stats={tags.LAYER_SATURATED_FRACTION: saturated},
    )
    assert analyzed(run)["findings"][0]["code"] == "unscaled_inputs"
    # The same inputs centred (a standardised set) are not called unscaled.
    run.scalars[tags.INPUT_MEAN] = np.zeros(10)
    assert "unscaled_inputs" not in codes(analyzed(run))
