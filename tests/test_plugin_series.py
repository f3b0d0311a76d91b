"""`series.build_series`: RunData -> the `/series` object, as plain data."""

import json
import math

import numpy as np
import pytest

from tb_stagnation.analysis.run_data import RunData
from tb_stagnation.plugin import jsonable
from tb_stagnation.plugin.series import MAX_CELLS, build_series, choose_stride
from tb_stagnation.summary import tags

REPORT = {
    "stalled_epochs": [2, 3],
    "baselines": {"constant_loss": 1.0986, "majority_rate": 0.34, "loss_kind": "crossentropy"},
}


def callback_run(epochs=5, layers=2, **overrides) -> RunData:
    steps = np.arange(epochs, dtype=np.int64)
    run = RunData(
        name="r",
        source="callback",
        epochs=steps,
        scalars={
            "logs/loss": np.linspace(2, 1, epochs),
            "logs/val_accuracy": np.full(epochs, 0.5),
            "logs/accuracy": np.full(epochs, 0.4),
            "logs/val_loss": np.full(epochs, 1.5),
            tags.LEARNING_RATE: np.full(epochs, 0.01),
            tags.GRAD_GLOBAL_NORM: np.full(epochs, 0.1),
            tags.PRED_ENTROPY: np.full(epochs, 0.9),
            tags.PRED_CHANGED_SHARE: np.r_[np.nan, np.full(epochs - 1, 0.2)],
        },
        layer_names=[f"l{i}" for i in range(layers)],
        layer_stats={
            tags.LAYER_GRAD_NORM: np.arange(epochs * layers, dtype=float).reshape(epochs, layers),
            tags.LAYER_DEAD_FRACTION: np.full((epochs, layers), np.nan),
        },
        model_card={
            "layers": [
                {"name": f"l{i}", "type": "Dense", "activation": None} for i in range(layers)
            ]
        },
        updated=1.5,
    )
    for key, value in overrides.items():
        setattr(run, key, value)
    return run


def test_shape_follows_http_api_and_is_aligned_on_epochs():
    series = build_series(callback_run(), REPORT)
    assert series["epochs"] == [0, 1, 2, 3, 4]
    # Each metric beside its val_ twin, loss first.
    assert list(series["metrics"]) == ["loss", "val_loss", "accuracy", "val_accuracy"]
    assert series["metrics"]["loss"] == [2.0, 1.75, 1.5, 1.25, 1.0]
    assert series["learning_rate"] == [0.01] * 5
    assert series["stalled_epochs"] == [2, 3] and series["baselines"] == REPORT["baselines"]
    assert series["global"]["grad_norm"] == [0.1] * 5
    assert series["global"]["update_ratio"] is None  # never logged
    assert series["predictions"]["changed_share"][0] is None  # absent at the first epoch
    assert series["inputs"] is None and series["batches"] is None  # no tag of theirs logged
    layers = series["layers"]
    assert layers["names"] == ["l0", "l1"] and layers["types"] == ["Dense", "Dense"]
    assert layers["activations"] == [None, None]
    assert layers["grad_norm"] == [[0.0, 2.0, 4.0, 6.0, 8.0], [1.0, 3.0, 5.0, 7.0, 9.0]]
    assert layers["dead_fraction"] == [[None] * 5] * 2  # NaN = does not apply
    assert layers["update_ratio"] is None
    assert series["downsampled"] is None
    json.loads(jsonable.dumps(series))  # strict JSON: no NaN literal anywhere


def test_non_finite_values_are_evidence_strings():
    run = callback_run()
    run.scalars["logs/loss"] = np.array([1.0, np.nan, np.inf, -np.inf, 0.5])
    run.layer_stats[tags.LAYER_GRAD_NORM][1, 0] = np.nan
    series = build_series(run, REPORT)
    assert series["metrics"]["loss"] == [1.0, "NaN", "Infinity", "-Infinity", 0.5]
    assert series["layers"]["grad_norm"][0][1] == "NaN"


def test_plain_keras_run_has_no_callback_groups():
    run = RunData(
        name="k",
        source="keras",
        epochs=np.arange(3),
        scalars={"logs/loss": np.ones(3), tags.LEARNING_RATE: np.full(3, 0.1)},
    )
    series = build_series(run, REPORT)
    for group in ("global", "predictions", "inputs", "batches", "layers"):
        assert series[group] is None, group
    assert series["source"] == "keras" and series["metrics"] == {"loss": [1.0, 1.0, 1.0]}


def test_empty_run():
    run = RunData(name="e", source="callback", epochs=np.zeros(0, dtype=np.int64))
    series = build_series(run, {})
    assert series["epochs"] == [] and series["metrics"] == {} and series["layers"] is None
    assert series["stalled_epochs"] == [] and series["downsampled"] is None


def test_layer_names_from_positions_when_the_model_card_disagrees():
    run = callback_run(model_card={"layers": [{"name": "only_one", "type": "Dense"}]})
    run.layer_names = ["layer_0", "layer_1"]  # what the reader falls back to
    layers = build_series(run, REPORT)["layers"]
    assert layers["names"] == ["layer_0", "layer_1"] and layers["types"] == [None, None]


def test_floats_are_shortened_to_float32_precision():
    run = callback_run()
    run.scalars["logs/loss"] = np.float32([0.1, 1 / 3, 2e-12, 12345.678, 0]).astype(np.float64)
    assert build_series(run, REPORT)["metrics"]["loss"] == [0.1, 0.3333333, 2e-12, 12345.68, 0.0]


@pytest.mark.parametrize(
    ("epochs", "cells", "expected"), [(0, 10, 1), (100, 10, 1), (5000, 1010, 21), (10**6, 3, 13)]
)
def test_stride_keeps_answers_under_the_cell_budget(epochs, cells, expected):
    stride = choose_stride(epochs, cells)
    assert stride == expected
    assert math.ceil(epochs / stride) * cells <= MAX_CELLS or stride == 1


def test_downsampling_keeps_nan_and_spikes_visible():
    epochs = 10
    run = callback_run(epochs=epochs, layers=1)
    run.scalars["logs/loss"] = np.arange(epochs, dtype=float)
    run.scalars["logs/loss"][4] = np.nan  # one NaN epoch inside bucket [3, 4, 5]
    run.scalars[tags.GRAD_GLOBAL_NORM] = np.r_[np.zeros(7), 100.0, np.zeros(2)]  # a spike at 7
    series = build_series(run, REPORT, max_cells=44)  # 11 cells per epoch: stride 3
    assert series["downsampled"] == {"stride": 3, "original_epochs": 10}
    assert series["epochs"] == [2, 5, 8, 9]  # each bucket labelled by its newest epoch
    assert series["metrics"]["loss"] == [2.0, "NaN", 8.0, 9.0]  # last value, NaN wins
    assert series["global"]["grad_norm"] == [0.0, 0.0, 100.0, 0.0]  # max-pooled
    assert series["predictions"]["changed_share"][0] == 0.2  # missing values skipped
    assert series["stalled_epochs"] == [2, 3]  # never downsampled
    assert len(series["layers"]["grad_norm"][0]) == 4


def test_long_wide_run_stays_a_few_megabytes():
    epochs, layers = 5000, 200
    rng = np.random.default_rng(0)
    run = callback_run(epochs=epochs, layers=layers)
    for tag in (
        tags.LAYER_GRAD_NORM,
        tags.LAYER_UPDATE_RATIO,
        tags.LAYER_WEIGHT_NORM,
        tags.LAYER_DEAD_FRACTION,
        tags.LAYER_SATURATED_FRACTION,
    ):
        run.layer_stats[tag] = rng.random((epochs, layers)).astype(np.float32).astype(float)
    run.layer_stats[tags.LAYER_GRAD_NORM][1234, 17] = np.nan
    series = build_series(run, REPORT)
    body = jsonable.dumps(series)
    assert len(body) < 4_000_000
    stride = series["downsampled"]["stride"]
    assert stride > 1 and series["epochs"][-1] == epochs - 1
    assert series["layers"]["grad_norm"][17][1234 // stride] == "NaN"
