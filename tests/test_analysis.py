"""Unit tests of the diagnosis on hand-built RunData: stall flags, baselines,
every detector, ranking, and the edge cases (empty, one epoch, NaN/Inf,
regression, plain-Keras runs). Fast: no TensorFlow, no files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from analysis_helpers import card, check_schema, codes, finding, keras_run, make_run

from tb_stagnation.analysis import baselines as baselines_module
from tb_stagnation.analysis import findings as findings_module
from tb_stagnation.analysis.report import analyze_run, rank, summary_line
from tb_stagnation.analysis.run_data import SOURCE_KERAS, RunData
from tb_stagnation.analysis.series import fmt_epochs, fmt_num, fmt_pct, json_number
from tb_stagnation.summary import tags

COUNTS3 = [196, 170, 146]  # majority 0.383, label entropy 1.092
H3 = -sum(c / 512 * math.log(c / 512) for c in COUNTS3)
HEALTHY_LOSS = [1.1, 0.86, 0.69, 0.56, 0.46, 0.38, 0.33, 0.28, 0.25, 0.22, 0.2, 0.18]
HEALTHY_ACC = [0.37, 0.67, 0.80, 0.85, 0.9, 0.92, 0.94, 0.95, 0.955, 0.965, 0.97, 0.98]


def flat(value, n, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return list(value * (1 + noise * rng.uniform(-1, 1, size=n)))


def analyzed(run: RunData) -> dict:
    report = analyze_run(run)
    check_schema(report)
    return report


# --- formatting helpers ----------------------------------------------------------


def test_formatting_helpers():
    assert fmt_epochs([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"
    assert fmt_epochs([]) == "-"
    assert fmt_num(3e-9) == "3e-9"
    assert fmt_num(2.1e10) == "2.1e10"
    assert fmt_num(0.693147) == "0.693"
    assert fmt_num(float("nan")) == "NaN"
    assert fmt_pct(0.004) == "0.4%"
    assert json_number(float("inf")) is None and json_number(1.23456789) == 1.23457


# --- baselines -------------------------------------------------------------------


def test_baselines_from_label_counts():
    run = make_run(HEALTHY_LOSS, acc=HEALTHY_ACC, counts=COUNTS3, model_card=card())
    base = baselines_module.compute(run)
    assert base.constant_loss == pytest.approx(H3)
    assert base.majority_rate == pytest.approx(196 / 512)
    assert base.loss_kind == "crossentropy"


def test_baselines_binary_and_bce_on_three_classes():
    binary = make_run(
        [0.4] * 3,
        counts=[90, 10],
        model_card=card(loss="binary_crossentropy", activation="sigmoid", width=1),
    )
    assert baselines_module.compute(binary).constant_loss == pytest.approx(
        -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    )
    mismatch = make_run([0.6] * 3, counts=[1, 1, 1], model_card=card(loss="binary_crossentropy"))
    # BCE averaged over 3 one-hot units, each a 1/3 yes/no problem.
    p = 1 / 3
    assert baselines_module.compute(mismatch).constant_loss == pytest.approx(
        -(p * math.log(p) + (1 - p) * math.log(1 - p))
    )


def test_baselines_regression_mse_uses_label_variance():
    run = make_run(
        [5.0] * 4,
        scalars={tags.LABEL_VARIANCE: 4.0, tags.LABEL_MEAN: 10.0},
        model_card=card(loss="mean_squared_error", activation=None, width=1, task="regression"),
    )
    base = baselines_module.compute(run)
    assert base.constant_loss == pytest.approx(4.0) and base.loss_kind == "mse"
    assert base.majority_rate is None


# --- stall flags -------------------------------------------------------------------


def test_healthy_run_is_not_flagged():
    report = analyzed(
        make_run(HEALTHY_LOSS, acc=HEALTHY_ACC, counts=COUNTS3, model_card=card(), lr=0.003)
    )
    assert report["healthy"] and report["stalled_epochs"] == []
    assert report["baselines"]["constant_loss"] == pytest.approx(H3, rel=1e-5)


def test_converged_then_flat_is_healthy():
    loss = [0.32, 0.13, 0.066, 0.033] + flat(0.025, 12, noise=0.3)
    acc = [0.86, 0.94, 0.97, 0.986] + flat(0.99, 12, noise=0.005)
    report = analyzed(make_run(loss, acc=acc, counts=[279, 233], lr=0.05, model_card=card(
        loss="binary_crossentropy", activation="sigmoid", width=1)))  # fmt: skip
    assert report["stalled_epochs"] == [] and report["healthy"]


def test_flat_at_the_constant_predictor_loss_is_a_stall_from_epoch_0():
    report = analyzed(
        make_run(flat(H3, 12, noise=0.001), acc=flat(0.383, 12), counts=COUNTS3, model_card=card())
    )
    assert report["stalled_epochs"] == list(range(12))
    assert report["stall_windows"][0]["kind"] == "plateau"
    assert not report["healthy"]


def test_noisy_plateau_at_baseline_is_flagged_with_tolerance():
    loss = flat(H3 * 1.01, 15, noise=0.004, seed=3)
    acc = flat(0.38, 15, noise=0.02, seed=4)
    report = analyzed(make_run(loss, acc=acc, counts=COUNTS3, model_card=card()))
    assert len(report["stalled_epochs"]) >= 13


def test_slow_but_steady_learning_is_not_a_stall():
    loss = [H3 * 0.98**i for i in range(15)]  # 2% per epoch
    acc = [0.40 + 0.01 * i for i in range(15)]
    report = analyzed(make_run(loss, acc=acc, counts=COUNTS3, model_card=card()))
    assert report["stalled_epochs"] == []


def test_mid_run_learning_rate_collapse_is_flagged_from_the_drop():
    loss = [1.22, 1.16, 1.11, 1.06, 1.01, 0.976, 0.956] + [0.956] * 7
    acc = [0.32, 0.354, 0.402, 0.438, 0.486, 0.533, 0.557] + [0.557] * 7
    lr = [0.01] * 6 + [1e-9] * 8
    report = analyzed(
        make_run(loss, acc=acc, lr=lr, counts=COUNTS3, model_card=card(optimizer="SGD"))
    )
    assert report["stalled_epochs"] == list(range(6, 14))
    top = report["findings"][0]
    assert top["code"] == "learning_rate_too_small" and top["epochs"][0] == 6
    assert "1e-9" in top["evidence"]


def test_stall_is_flagged_within_three_epochs_of_onset_as_epochs_arrive():
    loss = [1.22, 1.16, 1.11, 1.06, 1.01, 0.976, 0.956] + [0.956] * 7
    acc = [0.32, 0.354, 0.402, 0.438, 0.486, 0.533, 0.557] + [0.557] * 7
    lr = [0.01] * 6 + [1e-9] * 8
    onset = 6
    for seen in range(3, 15):
        run = make_run(loss[:seen], acc=acc[:seen], lr=lr[:seen], counts=COUNTS3, model_card=card())
        stalled = analyzed(run)["stalled_epochs"]
        if seen <= onset:
            assert stalled == [], seen
        if seen >= onset + 3:
            assert stalled and stalled[0] == onset, (seen, stalled)


def test_stall_of_a_run_resumed_at_initial_epoch_uses_epoch_numbers():
    run = make_run(
        flat(H3, 6, noise=0.001),
        acc=flat(0.38, 6),
        counts=COUNTS3,
        model_card=card(),
        epochs=np.arange(20, 26),
    )
    report = analyzed(run)
    assert report["stalled_epochs"] == list(range(20, 26))


def test_nan_loss_is_a_divergence_and_json_has_no_nan():
    loss = [1.1, 0.9, 3.0, 50.0, float("nan"), float("nan"), float("inf"), float("nan")]
    acc = [0.4, 0.5, 0.4, 0.35, 0.33, 0.33, 0.33, 0.33]
    report = analyzed(make_run(loss, acc=acc, counts=COUNTS3, model_card=card()))
    assert set(range(4, 8)) <= set(report["stalled_epochs"])
    assert report["stall_windows"][-1]["kind"] == "divergence"
    assert "nonfinite_loss" in codes(report)
    json.dumps(report, allow_nan=False)


def test_oscillation_without_progress_is_a_stall():
    loss = [0.9, 1.3, 0.95, 1.4, 1.0, 1.35, 0.98, 1.5, 1.02, 1.3]
    acc = [0.40, 0.33, 0.42, 0.35, 0.41, 0.34, 0.40, 0.33, 0.41, 0.36]
    report = analyzed(make_run(loss, acc=acc, counts=COUNTS3, model_card=card()))
    assert len(report["stalled_epochs"]) >= 8
    assert "oscillation" in {w["kind"] for w in report["stall_windows"]}


def test_regression_stuck_at_label_variance_vs_converged():
    regression_card = card(loss="mean_squared_error", activation=None, width=1, task="regression")
    scalars = {tags.LABEL_VARIANCE: 4.0, tags.LABEL_MEAN: 1.0}
    stuck = analyzed(make_run(flat(4.02, 10, 0.002), scalars=scalars, model_card=regression_card))
    assert stuck["stalled_epochs"] == list(range(10))
    learned = analyzed(
        make_run(
            [4.5, 2.0, 1.0, 0.5, 0.3, 0.2] + flat(0.15, 6, 0.05),
            scalars=scalars,
            model_card=regression_card,
        )
    )
    assert learned["stalled_epochs"] == [] and learned["healthy"]


# --- plain-Keras runs -----------------------------------------------------------------


def test_keras_only_flat_run_with_tiny_lr():
    report = analyzed(keras_run(flat(1.069, 12, 1e-5), acc=[0.457] * 12, lr=1e-7))
    assert report["source"] == "keras"
    assert report["stalled_epochs"] == list(range(12))
    assert report["findings"][0]["code"] == "learning_rate_too_small"
    assert any("StagnationCallback" in note for note in report["notes"])


def test_keras_only_healthy_run():
    report = analyzed(keras_run(HEALTHY_LOSS, acc=HEALTHY_ACC, lr=0.001))
    assert report["healthy"] and report["findings"] == []


def test_keras_only_loss_at_ln2_uses_estimated_baseline_and_fallback_finding():
    report = analyzed(keras_run(flat(0.6932, 10, 1e-4), acc=[0.5] * 10, lr=0.01))
    assert report["baselines"]["constant_loss"] == pytest.approx(math.log(2), rel=1e-5)
    assert report["stalled_epochs"] == list(range(10))
    top = report["findings"][0]
    assert top["code"] == "no_progress" and top["severity"] == "warning"
    assert "StagnationCallback" in top["fix"]


def test_keras_only_divergence_with_huge_lr():
    loss = [5.5e5, 2.4e7, 7.6e6, 3e8, float("nan"), float("nan")]
    report = analyzed(keras_run(loss, acc=[0.44, 0.47, 0.43, 0.36, 0.33, 0.33], lr=10.0))
    assert report["stalled_epochs"] == list(range(6))
    assert report["findings"][0]["code"] == "learning_rate_too_large"


# --- edge cases ------------------------------------------------------------------------


def test_empty_run():
    report = analyzed(RunData(name="empty", source="callback", epochs=np.zeros(0, np.int64)))
    assert report["epochs"] == 0 and report["healthy"] and report["stalled_epochs"] == []
    assert any("No epochs" in note for note in report["notes"])


def test_one_and_two_epoch_runs_get_a_note():
    one = analyzed(make_run([0.69], acc=[0.5], counts=[1, 1], model_card=card()))
    assert one["epochs"] == 1 and one["stalled_epochs"] == []
    assert any("one epoch" in note for note in one["notes"])
    two = analyzed(make_run([0.69, 0.69], acc=[0.5, 0.5], counts=[1, 1], model_card=card()))
    assert any("two epochs" in note for note in two["notes"])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e300, -1e300])
def test_nonfinite_or_extreme_everywhere(value):
    n = 6
    scalars = {tag: value for tag in (
        tags.GRAD_GLOBAL_NORM, tags.WEIGHT_GLOBAL_NORM, tags.UPDATE_GLOBAL_RATIO,
        tags.GRAD_NONFINITE_FRACTION, tags.INPUT_MAX_ABS, tags.INPUT_STD, tags.INPUT_MEAN,
        tags.BATCHES_SEEN, tags.BATCHES_DISTINCT, tags.PRED_TOP_CLASS_SHARE,
        tags.LABEL_VARIANCE, tags.LABEL_MEAN,
    )}  # fmt: skip
    stats = {tag: [value, value] for tag in tags.LAYER_STATS}
    run = make_run(
        [value] * n,
        acc=[value] * n,
        lr=value,
        counts=[value, value],
        scalars=scalars,
        layer_stats=stats,
        model_card=card(width=2),
    )
    report = analyzed(run)
    # An epoch where nothing at all is finite carries no information and may be dropped.
    assert report["epochs"] == (0 if value != value else n)


def test_missing_loss_runs_static_checks_only():
    run = make_run([0.5] * 3, counts=[1, 1, 1], model_card=card(activation="softmax", width=1))
    del run.scalars[tags.logs_tag("loss")]
    run.scalars[tags.LEARNING_RATE] = np.full(3, 0.01)
    report = analyzed(run)
    assert report["stalled_epochs"] == []
    assert codes(report) == ["loss_output_mismatch"]
    assert any("No loss" in note for note in report["notes"])


def test_malformed_run_data_is_reported_not_raised():
    run = make_run(HEALTHY_LOSS, acc=HEALTHY_ACC, counts=COUNTS3, model_card=card())
    run.scalars[tags.GRAD_GLOBAL_NORM] = np.ones(3)  # wrong length
    run.layer_stats[tags.LAYER_GRAD_NORM] = np.ones(5)  # wrong rank
    run.model_card = {"layers": "not a list", "loss": 7, "optimizer": [], "output_shape": "x"}
    report = analyzed(run)
    assert report["epochs"] == len(HEALTHY_LOSS)
    assert any("Ignored" in note for note in report["notes"])


def test_reader_notes_are_kept():
    run = make_run([0.5] * 3)
    run.notes.append("Skipped a truncated event file.")
    assert "Skipped a truncated event file." in analyzed(run)["notes"]


def test_a_failing_detector_becomes_a_note(monkeypatch):
    def broken(ctx):
        raise RuntimeError("boom")

    registry = list(findings_module.REGISTRY)
    registry.insert(0, findings_module.Detector("dead_units", broken, needs_callback=False))
    monkeypatch.setattr("tb_stagnation.analysis.report.REGISTRY", registry)
    report = analyze_run(
        make_run(flat(H3, 8, 0.001), acc=flat(0.38, 8), counts=COUNTS3, model_card=card())
    )
    assert any("dead_units failed" in note and "boom" in note for note in report["notes"])
    assert report["stalled_epochs"]


# --- detectors -----------------------------------------------------------------------


def stalled_run(**kwargs) -> RunData:
    """A 3-class run stuck at the constant-predictor loss, plus the given data."""
    kwargs.setdefault("counts", COUNTS3)
    kwargs.setdefault("model_card", card())
    return make_run(flat(H3 * 1.002, 10, 0.001), acc=flat(0.383, 10), **kwargs)


def test_constant_labels_is_an_error_even_while_the_loss_falls():
    loss = [0.41, 0.32, 0.25, 0.2, 0.16, 0.13, 0.11, 0.09]
    report = analyzed(
        make_run(
            loss,
            acc=[0.96] + [1.0] * 7,
            counts=[512, 0],
            model_card=card(loss="binary_crossentropy", activation="sigmoid", width=1),
        )  # fmt: skip
    )
    assert report["stalled_epochs"] == []
    assert report["findings"][0]["code"] == "constant_labels"
    assert not report["healthy"]
    assert "100%" in report["findings"][0]["evidence"]


def test_constant_regression_targets():
    run = make_run(
        [0.5, 0.1, 0.01, 0.001],
        scalars={tags.LABEL_VARIANCE: 0.0, tags.LABEL_MEAN: 3.0},
        model_card=card(loss="mse", activation=None, width=1, task="regression"),
    )
    assert analyzed(run)["findings"][0]["code"] == "constant_labels"


def test_constant_inputs_outranks_collapse():
    run = stalled_run(
        scalars={
            tags.INPUT_MEAN: 1.0,
            tags.INPUT_STD: 0.0,
            tags.INPUT_MAX_ABS: 1.0,
            tags.BATCHES_SEEN: 16,
            tags.BATCHES_DISTINCT: 1,
            tags.PRED_TOP_CLASS_SHARE: 1.0,
        }
    )
    report = analyzed(run)
    assert codes(report)[0] == "constant_inputs"
    assert "prediction_collapse" in codes(report)
    assert "repeated_batches" not in codes(report)  # identical samples, not a pipeline bug


def test_nonfinite_data():
    run = stalled_run(scalars={tags.INPUT_MEAN: np.nan, tags.BATCHES_SEEN: 16})
    assert codes(analyzed(run))[0] == "nonfinite_data"


def test_unscaled_inputs_error_in_a_stall_silent_or_warning_otherwise():
    scalars = {tags.INPUT_MAX_ABS: 2e10, tags.INPUT_STD: 3e9, tags.INPUT_MEAN: 1.5e10}
    report = analyzed(stalled_run(scalars=scalars))
    top = report["findings"][0]
    assert top["code"] == "unscaled_inputs" and top["severity"] == "error"
    assert "2e10" in top["evidence"]
    healthy = analyzed(
        make_run(
            HEALTHY_LOSS,
            acc=HEALTHY_ACC,
            counts=COUNTS3,
            model_card=card(),
            scalars={tags.INPUT_MAX_ABS: 255.0, tags.INPUT_STD: 80.0, tags.INPUT_MEAN: 120.0},
        )  # fmt: skip
    )
    # Raw pixels on a run that learns: nothing to report (field cases: healthy twins
    # that keep 0-255 inputs were told "unscaled" on every run).
    assert "unscaled_inputs" not in codes(healthy) and healthy["healthy"]
    far_off = analyzed(
        make_run(
            HEALTHY_LOSS,
            acc=HEALTHY_ACC,
            counts=COUNTS3,
            model_card=card(),
            scalars={tags.INPUT_MAX_ABS: 2e10, tags.INPUT_STD: 3e9, tags.INPUT_MEAN: 1.5e10},
        )  # fmt: skip
    )
    assert finding(far_off, "unscaled_inputs")["severity"] == "warning" and far_off["healthy"]


def test_standardised_inputs_are_not_unscaled():
    report = analyzed(stalled_run(scalars={tags.INPUT_MAX_ABS: 4.5, tags.INPUT_STD: 1.0}))
    assert "unscaled_inputs" not in codes(report)


def test_repeated_batches_error_and_small_dataset_warning():
    loss = [1.0, 0.83, 0.7, 0.59, 0.5, 0.42, 0.35, 0.3]
    acc = [0.58, 0.72, 0.78, 0.79, 0.86, 0.9, 0.93, 0.95]
    one = analyzed(make_run(loss, acc=acc, counts=COUNTS3, model_card=card(),
                            scalars={tags.BATCHES_SEEN: 16, tags.BATCHES_DISTINCT: 1}))  # fmt: skip
    assert one["findings"][0]["code"] == "repeated_batches" and not one["healthy"]
    few = analyzed(make_run(loss, acc=acc, counts=COUNTS3, model_card=card(),
                            scalars={tags.BATCHES_SEEN: 16, tags.BATCHES_DISTINCT: 4}))  # fmt: skip
    assert finding(few, "repeated_batches")["severity"] == "warning" and few["healthy"]
    one_batch = {tags.BATCHES_SEEN: 1, tags.BATCHES_DISTINCT: 1}
    full_batch = analyzed(
        make_run(loss, acc=acc, counts=COUNTS3, model_card=card(), scalars=one_batch)
    )
    assert "repeated_batches" not in codes(full_batch)


def test_class_imbalance_accuracy_at_majority_is_an_error_without_stall():
    bce = card(loss="binary_crossentropy", activation="sigmoid", width=1)
    # The loss keeps creeping down (calibration) but accuracy sits at 90%.
    loss = [0.7, 0.5, 0.4, 0.36, 0.34, 0.33, 0.32, 0.31]
    acc = [0.6, 0.85, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9]
    report = analyzed(make_run(loss, acc=acc, counts=[460, 52], model_card=bce))
    top = report["findings"][0]
    assert top["code"] == "class_imbalance" and top["severity"] == "error"
    learned = analyzed(
        make_run(
            [0.5, 0.3, 0.2, 0.1, 0.08],
            acc=[0.9, 0.93, 0.96, 0.98, 0.99],
            counts=[480, 32],
            model_card=bce,
        )  # fmt: skip
    )
    assert finding(learned, "class_imbalance")["severity"] == "warning" and learned["healthy"]


def test_loss_output_mismatch_static_checks_without_stall():
    cases = {
        "softmax width 1": card(activation="softmax", width=1),
        "bce on softmax": card(loss="binary_crossentropy", activation="softmax", width=3),
        "categorical on width 1": card(
            loss="categorical_crossentropy", activation="sigmoid", width=1
        ),
    }  # fmt: skip
    for label, model_card in cases.items():
        report = analyzed(make_run(HEALTHY_LOSS, acc=HEALTHY_ACC, model_card=model_card))
        assert report["findings"][0]["code"] == "loss_output_mismatch", label
        assert report["findings"][0]["severity"] == "error" and not report["healthy"]
    ok = analyzed(make_run(HEALTHY_LOSS, acc=HEALTHY_ACC, counts=COUNTS3, model_card=card()))
    assert "loss_output_mismatch" not in codes(ok)


def test_sigmoid_output_with_regression_targets_outside_0_1():
    model_card = card(loss="mean_squared_error", activation="sigmoid", width=1, task="regression")
    run = make_run(
        flat(2500.0, 8, 0.001),
        scalars={tags.LABEL_MEAN: 52.0, tags.LABEL_VARIANCE: 144.0},
        model_card=model_card,
    )
    top = analyzed(run)["findings"][0]
    assert top["code"] == "loss_output_mismatch" and "52" in top["evidence"]


def test_probabilities_loss_on_linear_output():
    model_card = card(activation="linear")
    model_card["outputs"][0]["from_logits"] = False
    report = analyzed(stalled_run(model_card=model_card))
    assert report["findings"][0]["code"] == "loss_output_mismatch"


def test_frozen_model_and_partly_frozen_base():
    layers = [
        {"name": "base", "type": "Dense", "activation": "relu", "trainable": False,
         "params": 5000, "trainable_params": 0},
        {"name": "head", "type": "Dense", "activation": "softmax", "trainable": False,
         "params": 99, "trainable_params": 0},
    ]  # fmt: skip
    frozen = analyzed(
        stalled_run(
            model_card=card(layers=layers),
            layer_stats={tags.LAYER_UPDATE_RATIO: [0.0, 0.0]},
        )
    )
    top = frozen["findings"][0]
    assert top["code"] == "frozen_layers" and top["confidence"] >= 0.95
    assert top["layers"] == ["base", "head"] and "did not change" in top["evidence"]
    # Transfer learning that works: a frozen base under a trainable head is fine.
    layers[1]["trainable"] = True
    layers[1]["trainable_params"] = 99
    transfer = analyzed(
        make_run(HEALTHY_LOSS, acc=HEALTHY_ACC, counts=COUNTS3, model_card=card(layers=layers))
    )
    assert transfer["healthy"] and "frozen_layers" not in codes(transfer)
    stuck = analyzed(stalled_run(model_card=card(layers=layers)))
    assert finding(stuck, "frozen_layers")["severity"] == "error"


def test_learning_rate_too_large_with_divergence():
    loss = [5.5e5, 2.4e7, 7.6e6, 5e5, 4.6e3, 1.9e4, 1.2e5, 1.57, 1.34, 1.53, 1.56]
    acc = [0.44, 0.47, 0.43, 0.36, 0.39, 0.36, 0.44, 0.43, 0.44, 0.46, 0.44]
    report = analyzed(
        make_run(loss, acc=acc, lr=10.0, counts=COUNTS3, model_card=card(optimizer="SGD"))
    )
    assert report["stalled_epochs"] == list(range(11))
    top = report["findings"][0]
    assert top["code"] == "learning_rate_too_large" and "1000x" in top["evidence"]


def test_exploding_gradients_with_nonfinite_gradients():
    nan = float("nan")
    run = make_run(
        [nan] * 8,
        acc=[0.33] * 8,
        lr=0.01,
        counts=COUNTS3,
        model_card=card(optimizer="SGD"),
        scalars={
            tags.GRAD_GLOBAL_NORM: [1.1e9] + [nan] * 7,
            tags.GRAD_NONFINITE_FRACTION: [0.8] + [1.0] * 7,
            tags.WEIGHT_GLOBAL_NORM: nan,
            tags.PRED_TOP_CLASS_SHARE: 1.0,
        },
        layer_stats={tags.LAYER_DEAD_FRACTION: [1.0, nan]},
    )
    report = analyzed(run)
    assert report["findings"][0]["code"] == "exploding_gradients"
    assert "1.1e9" in report["findings"][0]["evidence"]
    # Unit and prediction statistics of a NaN network are not evidence.
    assert "dead_units" not in codes(report) and "prediction_collapse" not in codes(report)


def test_vanishing_gradients():
    width = [{"name": f"d{i}", "type": "Dense", "activation": "sigmoid", "trainable": True,
              "params": 1056, "trainable_params": 1056} for i in range(8)]  # fmt: skip
    width.append({"name": "out", "type": "Dense", "activation": "sigmoid", "trainable": True,
                  "params": 33, "trainable_params": 33})  # fmt: skip
    grads = [3e-9 * 4.0**i for i in range(8)] + [0.05]
    report = analyzed(
        stalled_run(
            model_card=card(layers=width, optimizer="SGD", learning_rate=0.01),
            lr=0.01,
            layer_stats={tags.LAYER_GRAD_NORM: grads},
        )
    )
    top = report["findings"][0]
    assert top["code"] == "vanishing_gradients"
    assert top["layers"][0] == "d0" and "3e-9" in top["evidence"] and "sigmoid" in top["evidence"]


def two_relu_layers_and_softmax() -> list[dict]:
    """Model-card layers h0, h1 (ReLU) and out (softmax)."""
    layers = [{"name": f"h{i}", "type": "Dense", "activation": "relu", "trainable": True,
               "params": 352, "trainable_params": 352} for i in range(2)]  # fmt: skip
    layers.append({"name": "out", "type": "Dense", "activation": "softmax", "trainable": True,
                   "params": 99, "trainable_params": 99})  # fmt: skip
    return layers


def test_zero_gradients_with_zero_weights_outranks_dead_units():
    layers = two_relu_layers_and_softmax()
    report = analyzed(
        stalled_run(
            model_card=card(layers=layers),
            layer_stats={
                tags.LAYER_GRAD_NORM: [0.0, 0.0, 0.1],
                tags.LAYER_WEIGHT_NORM: [0.0, 0.0, 2.4],
                tags.LAYER_DEAD_FRACTION: [1.0, 1.0, np.nan],
            },
        )
    )
    assert report["findings"][0]["code"] == "zero_gradients"
    assert report["findings"][0]["layers"] == ["h0", "h1"]


def test_dead_units_outrank_the_zero_gradients_they_cause():
    layers = two_relu_layers_and_softmax()
    report = analyzed(
        stalled_run(
            model_card=card(layers=layers),
            layer_stats={
                tags.LAYER_GRAD_NORM: [0.0, 0.0, 0.1],
                tags.LAYER_WEIGHT_NORM: [3.0, 5.0, 2.4],
                tags.LAYER_DEAD_FRACTION: [1.0, 1.0, np.nan],
            },
        )
    )
    assert codes(report)[:2] == ["dead_units", "zero_gradients"]


def test_saturation_ignores_the_output_layer():
    model_card = card(loss="binary_crossentropy", activation="sigmoid", width=1)
    report = analyzed(
        make_run(
            HEALTHY_LOSS,
            acc=HEALTHY_ACC,
            counts=[279, 233],
            model_card=model_card,
            layer_stats={tags.LAYER_SATURATED_FRACTION: [np.nan, 1.0]},
        )  # fmt: skip
    )
    assert "saturated_activations" not in codes(report)
    stuck = analyzed(
        stalled_run(
            model_card=card(
                layers=[
                    {
                        "name": "t",
                        "type": "Dense",
                        "activation": "tanh",
                        "trainable": True,
                        "params": 352,
                        "trainable_params": 352,
                    },
                    {
                        "name": "out",
                        "type": "Dense",
                        "activation": "softmax",
                        "trainable": True,
                        "params": 99,
                        "trainable_params": 99,
                    },
                ]
            ),  # fmt: skip
            layer_stats={tags.LAYER_SATURATED_FRACTION: [0.95, np.nan]},
        )
    )
    assert finding(stuck, "saturated_activations")["layers"] == ["t"]


def test_prediction_collapse_alone():
    report = analyzed(stalled_run(scalars={tags.PRED_TOP_CLASS_SHARE: 1.0,
                                           tags.PRED_CHANGED_SHARE: 0.0}))  # fmt: skip
    top = report["findings"][0]
    assert top["code"] == "prediction_collapse" and "no prediction changed" in top["evidence"]


def test_rank_demotes_consequences_of_a_strong_root_cause():
    root = findings_module.Finding(
        "constant_inputs", "error", 0.9, "e", "f", epochs=[1, 2], explains=("prediction_collapse",)
    )
    symptom = findings_module.Finding("prediction_collapse", "error", 0.95, "e", "f", epochs=[2])
    unrelated = findings_module.Finding("vanishing_gradients", "error", 0.95, "e", "f", epochs=[7])
    ordered = rank([symptom, unrelated, root])
    assert [f.code for f in ordered] == ["vanishing_gradients", "constant_inputs",
                                          "prediction_collapse"]  # fmt: skip
    assert ordered[2].explained_by == "constant_inputs" and ordered[2].confidence < 0.9
    # Tiers alone rank but do not claim a causal link.
    pipeline = findings_module.Finding("repeated_batches", "error", 0.9, "e", "f")
    gradients = findings_module.Finding("vanishing_gradients", "error", 0.95, "e", "f")
    tiered = rank([pipeline, gradients])
    assert [f.code for f in tiered] == ["repeated_batches", "vanishing_gradients"]
    assert tiered[1].explained_by is None


def test_summary_line():
    stuck = analyzed(stalled_run(scalars={tags.PRED_TOP_CLASS_SHARE: 1.0}))
    assert summary_line(stuck).startswith("stalled in epochs 0-9")
    assert summary_line(analyzed(make_run(HEALTHY_LOSS, acc=HEALTHY_ACC))) == "healthy"


def test_every_code_has_a_detector_or_is_the_fallback():
    registered = {det.code for det in findings_module.REGISTRY}
    assert set(findings_module.CODES) - registered == {"no_progress"}


def test_analysis_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, tb_stagnation.analysis.report, tb_stagnation.analysis.api;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_keras_source_with_callback_only_tags_is_still_keras():
    run = keras_run(HEALTHY_LOSS, acc=HEALTHY_ACC)
    run.scalars[tags.GRAD_GLOBAL_NORM] = np.zeros(len(HEALTHY_LOSS))
    assert analyzed(run)["source"] == SOURCE_KERAS


def test_reader_presence_masks_tell_a_gap_from_a_nan_loss():
    loss = HEALTHY_LOSS[:6] + [float("nan")] * 2 + HEALTHY_LOSS[6:8]
    acc = HEALTHY_ACC[:6] + [float("nan")] * 2 + HEALTHY_ACC[6:8]
    run = make_run(loss, acc=acc, counts=COUNTS3, model_card=card(), lr=0.001)
    present = np.ones(10, dtype=bool)
    present[6:8] = False  # epochs 6-7 logged no loss at all (e.g. another tag's steps)
    run.scalar_present = {tags.logs_tag("loss"): present}
    gap = analyzed(run)
    assert gap["epochs"] == 8 and gap["stalled_epochs"] == [] and gap["healthy"]
    run.scalar_present = {tags.logs_tag("loss"): np.ones(10, dtype=bool)}
    logged_nan = analyzed(run)
    assert logged_nan["epochs"] == 10 and {6, 7} <= set(logged_nan["stalled_epochs"])
    assert "nonfinite_loss" in codes(logged_nan)
