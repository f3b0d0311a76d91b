"""Helpers for the analysis tests: hand-built RunData (no TensorFlow, no files)
and the report schema check. Holds no tests itself."""

from __future__ import annotations

import json
import math

import numpy as np

from tb_stagnation.analysis.findings import CODES
from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, SOURCE_KERAS, RunData
from tb_stagnation.summary import tags


def card(
    loss="sparse_categorical_crossentropy",
    activation="softmax",
    width=3,
    layers=None,
    optimizer="Adam",
    learning_rate=0.001,
    task=None,
    **extra,
) -> dict:
    layers = layers or [
        {"name": "dense", "type": "Dense", "activation": "relu", "trainable": True,
         "params": 352, "trainable_params": 352},
        {"name": "dense_1", "type": "Dense", "activation": activation, "trainable": True,
         "params": 33 * width, "trainable_params": 33 * width},
    ]  # fmt: skip
    data = {
        "format_version": 1,
        "model_class": "Sequential",
        "loss": loss,
        "optimizer": {"class": optimizer, "learning_rate": learning_rate},
        "output_shape": [None, width],
        "output_activation": activation,
        "outputs": [
            {
                "name": layers[-1]["name"],
                "shape": [None, width],
                "activation": activation,
                "loss": loss,
                "from_logits": False,
            }
        ],  # fmt: skip
        "stats_output": layers[-1]["name"],
        "task": task or ("classification" if width > 1 else "binary"),
        "num_classes": width if width > 1 else 2,
        "trainable_params": sum(layer["trainable_params"] for layer in layers),
        "non_trainable_params": sum(
            layer["params"] - layer["trainable_params"] for layer in layers
        ),
        "layers": layers,
        "steps_per_epoch": 16,
        "batch_size": 32,
    }
    data.update(extra)
    return data


def make_run(
    loss,
    *,
    acc=None,
    lr=None,
    source=SOURCE_CALLBACK,
    counts=None,
    model_card=None,
    scalars=None,
    layer_stats=None,
    name="run",
    epochs=None,
) -> RunData:
    """A run whose per-epoch series are the given lists (None entries -> NaN)."""
    loss = np.array([np.nan if v is None else v for v in loss], dtype=np.float64)
    n = loss.shape[0]
    data = {tags.logs_tag("loss"): loss}
    if acc is not None:
        data[tags.logs_tag("accuracy")] = np.asarray(acc, dtype=np.float64)
    if lr is not None:
        data[tags.LEARNING_RATE] = np.broadcast_to(np.asarray(lr, dtype=np.float64), (n,)).copy()
    for tag, values in (scalars or {}).items():
        data[tag] = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)).copy()
    class_counts = None
    if counts is not None:
        class_counts = np.tile(np.asarray(counts, dtype=np.float64), (n, 1))
    stats = {}
    for tag, rows in (layer_stats or {}).items():
        rows = np.asarray(rows, dtype=np.float64)
        stats[tag] = np.tile(rows, (n, 1)) if rows.ndim == 1 else rows
    names = []
    if model_card is not None:
        names = [layer["name"] for layer in model_card.get("layers", [])]
    return RunData(
        name=name,
        source=source,
        epochs=np.arange(n, dtype=np.int64) if epochs is None else np.asarray(epochs),
        scalars=data,
        layer_names=names,
        layer_stats=stats,
        class_counts=class_counts,
        model_card=model_card,
    )


def keras_run(loss, *, acc=None, lr=None, name="keras_run") -> RunData:
    return make_run(loss, acc=acc, lr=lr, source=SOURCE_KERAS, name=name)


def check_schema(report: dict) -> None:
    """The http_api.md per-run object, JSON without NaN."""
    json.dumps(report, allow_nan=False)
    assert set(report) >= {
        "run", "source", "epochs", "healthy", "stalled_epochs", "findings",
        "stall_windows", "baselines", "notes",
    }  # fmt: skip
    assert report["source"] in (SOURCE_CALLBACK, SOURCE_KERAS)
    assert isinstance(report["epochs"], int) and report["epochs"] >= 0
    assert isinstance(report["healthy"], bool)
    assert all(isinstance(e, int) for e in report["stalled_epochs"])
    assert report["stalled_epochs"] == sorted(set(report["stalled_epochs"]))
    has_error = any(f["severity"] == "error" for f in report["findings"])
    assert report["healthy"] == (not report["stalled_epochs"] and not has_error)
    confidences = [f["confidence"] for f in report["findings"]]
    assert confidences == sorted(confidences, reverse=True)
    for finding in report["findings"]:
        assert finding["code"] in CODES
        assert finding["severity"] in ("error", "warning")
        assert 0.0 <= finding["confidence"] <= 1.0
        assert all(isinstance(e, int) for e in finding["epochs"])
        assert all(isinstance(name, str) for name in finding["layers"])
        assert finding["evidence"] and finding["fix"] and finding["title"]
    for window in report["stall_windows"]:
        assert window["kind"] in ("plateau", "oscillation", "divergence")
        assert window["start"] <= window["end"]
    baselines = report["baselines"]
    assert set(baselines) >= {"constant_loss", "majority_rate", "loss_kind"}
    for key in ("constant_loss", "majority_rate"):
        value = baselines[key]
        assert value is None or (isinstance(value, float) and math.isfinite(value))
    assert baselines["loss_kind"] in ("crossentropy", "mse", None)
    assert all(isinstance(note, str) for note in report["notes"])
    assert not any("failed" in note or "could not be analysed" in note for note in report["notes"])


def codes(report: dict) -> list[str]:
    return [f["code"] for f in report["findings"]]


def finding(report: dict, code: str) -> dict:
    for item in report["findings"]:
        if item["code"] == code:
            return item
    raise AssertionError(f"no {code} finding in {codes(report)}")
