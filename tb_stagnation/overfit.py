"""`overfit_check`: can this model fit a handful of training samples?

The troubleshooting playbook's first sanity check: before tuning anything,
make sure the model can drive the training loss near zero on ~20 samples. A
model that cannot memorise 20 samples has a structural problem (labels that do
not fit the loss, frozen layers, an output that cannot produce the targets, a
learning rate far too small); more data or epochs will not help.

`overfit_check(model, x, y)` trains a copy of the model (same architecture,
same loss and loss weights, the optimizer rebuilt from its config with fresh
state) on the first `samples` samples, one full batch per step, and never
touches the model, its weights or its optimizer. The copy starts from the
model's current weights (`reinitialize=True`: from a fresh initialisation).

"Near zero" is relative to what learning nothing scores: the check passes when
the training loss falls to `NEAR_ZERO` (10%) of the reference loss, or when a
classifier gets every sample right. The reference is the loss of the best
constant predictor on these samples (the label entropy for cross-entropy, the
label variance for MSE), or the initial loss when that is lower or unknown.
The loss curve is returned with the answer.

Verdicts: "passed"; "stuck" (the best loss stayed above `STUCK` = 50% of the
reference, or did not change at all: it cannot learn); "slow" (it learns, but
did not get near zero within `max_epochs` steps); "nonfinite" (the loss
became NaN/Inf); "negative" (a cross-entropy below 0: labels outside [0, 1]).

`fix=` re-runs the test with one suggested change (a learning rate, a loss, an
output activation) to check that the change makes the model fit before the user
retrains with it. The copying helpers here (`copy_model`, `fresh_optimizer`,
`compile_copy`) are shared with `lr_range_test`, which experiments on a copy
the same way.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tb_stagnation.analysis.baselines import entropy
from tb_stagnation.jsonable import finite_or_none
from tb_stagnation.keras_import import import_tensorflow_and_keras
from tb_stagnation.losses import is_sparse, loss_family, loss_name_and_logits

NEAR_ZERO = 0.1
STUCK = 0.5
MAX_EPOCHS = 500
# A loss that has not changed at all in this many steps never will.
FLAT_STEPS = 50
# A cross-entropy below this is impossible with labels in [0, 1].
NEGATIVE_LOSS = -1e-3
# The logged curve is thinned evenly to at most this many points.
CURVE_POINTS = 200
# The most samples the check trains on (one batch).
MAX_SAMPLES = 1024
# What `fix=` may change.
FIX_KEYS = ("learning_rate", "loss", "output_activation")


class OverfitCheckError(ValueError):
    """The check cannot run on this model or data (the message says why)."""


@dataclass(repr=False)
class OverfitResult:
    """The answer of `overfit_check`; `str()` is a one-line summary."""

    passed: bool
    verdict: str  # "passed", "stuck", "slow", "nonfinite" or "negative"
    samples: int
    epochs: int  # training steps taken, each one full batch of the samples
    initial_loss: float
    final_loss: float
    best_loss: float
    reference_loss: float
    reference: str  # "constant predictor" or "initial loss"
    accuracy: float | None  # final training accuracy (single-output classifiers)
    curve: list[float] = field(default_factory=list)  # training loss per step
    message: str = ""
    seconds: float = 0.0
    trainable_weights: int = -1  # trainable variables of the copy (0: nothing can learn)
    fix: str = ""  # the change checked with `fix=` ("sparse_categorical_crossentropy"), or ""

    def __repr__(self) -> str:
        return (
            f"OverfitResult(passed={self.passed}, verdict={self.verdict!r}, "
            f"samples={self.samples}, epochs={self.epochs}, "
            f"loss={_fmt(self.initial_loss)}->{_fmt(self.final_loss)}, "
            f"reference={_fmt(self.reference_loss)} ({self.reference}))"
        )

    def __str__(self) -> str:
        return self.message

    def to_json(self, max_points: int = CURVE_POINTS) -> dict:
        """The FORMAT.md `preflight.overfit` object (JSON-safe: no NaN)."""
        curve = self.curve
        if len(curve) > max_points:
            picks = np.unique(np.linspace(0, len(curve) - 1, max_points).round().astype(int))
            curve = [curve[i] for i in picks]
        return {
            "passed": bool(self.passed),
            "verdict": self.verdict,
            "samples": int(self.samples),
            "epochs": int(self.epochs),
            "initial_loss": finite_or_none(self.initial_loss),
            "final_loss": finite_or_none(self.final_loss),
            "best_loss": finite_or_none(self.best_loss),
            "reference_loss": finite_or_none(self.reference_loss),
            "reference": self.reference,
            "accuracy": finite_or_none(self.accuracy),
            "curve": [finite_or_none(v) for v in curve],
            "message": self.message,
            "trainable_weights": int(self.trainable_weights),
        }


def _fmt(value: Any) -> str:
    if value is None or not math.isfinite(float(value)):
        return str(value)
    return f"{float(value):.4g}"


def overfit_check(
    model: Any,
    x: Any,
    y: Any = None,
    samples: int = 20,
    max_epochs: int = MAX_EPOCHS,
    *,
    reinitialize: bool = False,
    fix: Mapping[str, Any] | None = None,
    verbose: int = 0,
) -> OverfitResult:
    """Train a copy of `model` on `samples` samples and say whether it can fit them.

    Args:
        model: a compiled Keras model (Sequential, functional, or a subclassed
            model whose `get_config()` / `from_config()` rebuild it). It is not
            modified: a copy is trained.
        x: the inputs (arrays, tensors, a dict or list of them), or a batched
            `tf.data.Dataset` of `(x, y)` whose first batches are used.
        y: the labels, like `fit`'s; None when `x` is a dataset.
        samples: how many of the first samples to fit (at most 1024). 20 is
            the playbook's number. Defaults to 20.
        max_epochs: at most this many training steps (each one full batch of
            the samples). Defaults to 500, enough for Adam or RMSprop at their
            default rates; slower optimizers may answer "slow".
        reinitialize: start the copy from a fresh initialisation instead of the
            model's current weights. Defaults to False.
        fix: check a change before retraining with it: the copy is trained
            with it instead of the model's own setting, and the message says
            whether the model then fits ("checked: with ... this model fits 20
            samples in 40 steps"). A dict of one or more of
            `{"learning_rate": 3e-3}` (a float: the same optimizer at this
            constant rate, e.g. `lr_range_test(...).suggested_lr`),
            `{"loss": "sparse_categorical_crossentropy"}` (a loss name or
            object, as `compile` takes it) and `{"output_activation": "softmax"}`
            (an activation name or function for the output layer of a
            single-output model). Defaults to None: the model as compiled.
        verbose: 1 prints the answer. Defaults to 0.

    Returns:
        An `OverfitResult`: `passed`, the verdict, the initial, final and best
        loss, the reference loss, the loss curve and a one-line message.

    Raises:
        OverfitCheckError: the model is not compiled, cannot be copied (a
            subclassed model without `get_config()`), the data cannot be
            sliced into samples, or the fix cannot be applied (or training
            fails with it).
        ValueError: `samples`, `max_epochs` or `fix` is malformed.
    """
    tf, keras = import_tensorflow_and_keras()
    if not isinstance(samples, (int, np.integer)) or not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be an integer in 1..{MAX_SAMPLES}, got {samples!r}")
    if not isinstance(max_epochs, (int, np.integer)) or max_epochs < 1:
        raise ValueError(f"max_epochs must be an integer >= 1, got {max_epochs!r}")
    changes = _check_fix(fix)
    require_compiled(model, "overfit_check", OverfitCheckError)
    xs, ys = _subset(tf, keras, x, y, int(samples))
    count = _count_rows(keras, xs)
    if count < 1:
        raise OverfitCheckError("overfit_check got no samples.")
    started = time.perf_counter()
    copy, start = copy_model(keras, model, xs, reinitialize)
    if "output_activation" in changes:
        set_output_activation(keras, copy, changes["output_activation"], OverfitCheckError)
    loss = changes.get("loss", model.loss)
    optimizer = fresh_optimizer(model.optimizer, changes.get("learning_rate"))
    metric = _accuracy_metric(loss, ys)
    compile_copy(model, copy, optimizer, loss, [metric] if metric else None)
    family, constant, valid = reference_loss(loss, ys)
    with warnings.catch_warnings():
        # A frozen copy is a finding here, not a warning of Keras's.
        warnings.filterwarnings("ignore", message=".*does not have any trainable weights.*")
        try:
            result = _train(copy, xs, ys, count, int(max_epochs), family, constant, valid, metric)
        except Exception as error:
            if not changes:
                raise
            raise OverfitCheckError(
                f"with {describe_fix(changes)} the copy does not train "
                f"({type(error).__name__}: {_first_line(error)})."
            ) from error
    result.fix = describe_fix(changes) if changes else ""
    result.message = _message(result, start, not copy.trainable_weights)
    if not result.passed and _one_unit_categorical(loss, ys):
        result.message += (
            " A categorical cross-entropy over one unit is 0 whatever the model predicts: "
            "use binary_crossentropy."
        )
    result.seconds = time.perf_counter() - started
    if verbose:
        print(f"tb_stagnation overfit_check: {result.message}")
    return result


def _check_fix(fix: Mapping[str, Any] | None) -> dict[str, Any]:
    if fix is None:
        return {}
    if not isinstance(fix, Mapping) or not fix:
        raise ValueError(
            f"fix must be a dict with one or more of {', '.join(FIX_KEYS)}, got {fix!r}; "
            'e.g. fix={"learning_rate": 3e-3}.'
        )
    unknown = sorted(set(fix) - set(FIX_KEYS))
    if unknown:
        raise ValueError(f"fix can change {', '.join(FIX_KEYS)}; not {', '.join(unknown)}.")
    changes = dict(fix)
    if "learning_rate" in changes:
        rate = changes["learning_rate"]
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float, np.floating, np.integer))
            or not math.isfinite(float(rate))
            or float(rate) <= 0
        ):
            raise ValueError(f"fix learning_rate must be a positive number, got {rate!r}.")
        changes["learning_rate"] = float(rate)
    if "loss" in changes and not (isinstance(changes["loss"], str) or callable(changes["loss"])):
        raise ValueError(f"fix loss must be a loss name or a loss object, got {changes['loss']!r}.")
    if "output_activation" in changes:
        activation = changes["output_activation"]
        if not (isinstance(activation, str) and activation) and not callable(activation):
            raise ValueError(
                f"fix output_activation must be an activation name, got {activation!r}."
            )
    return changes


def describe_fix(changes: Mapping[str, Any]) -> str:
    """How a message names the change: "learning rate 0.003 and a softmax output"."""
    parts = []
    if "loss" in changes:
        name, from_logits = loss_name_and_logits(changes["loss"])
        loss = changes["loss"] if isinstance(changes["loss"], str) else name
        parts.append(f"{loss}{' (from_logits=True)' if from_logits else ''}")
    if "output_activation" in changes:
        activation = changes["output_activation"]
        name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
        parts.append(f"a {name or 'new'} output")
    if "learning_rate" in changes:
        parts.append(f"learning rate {fmt_rate(changes['learning_rate'])}")
    return " and ".join(parts)


def fmt_rate(rate: float) -> str:
    """A learning rate as people write it: 0.1, 0.03, 3e-3, 1e-7."""
    rate = float(rate)
    if not math.isfinite(rate) or rate <= 0:
        return str(rate)
    if 0.01 <= rate < 100:
        return f"{rate:.2g}"
    mantissa, exponent = f"{rate:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def require_compiled(model: Any, tool: str, error: type[Exception]) -> None:
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise error(f"{tool} needs a compiled model: call model.compile() first.")


# --------------------------------------------------------------- the samples


def _subset(tf: Any, keras: Any, x: Any, y: Any, samples: int) -> tuple[Any, Any]:
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise OverfitCheckError("pass y=None when x is a tf.data.Dataset of (x, y).")
        return _from_dataset(keras, x, samples)
    if y is None:
        raise OverfitCheckError("overfit_check needs labels: overfit_check(model, x, y).")
    try:
        return (
            keras.tree.map_structure(lambda a: _rows(a, samples), x),
            keras.tree.map_structure(lambda a: _rows(a, samples), y),
        )
    except Exception as error:
        raise OverfitCheckError(
            f"cannot take the first {samples} samples of x and y ({type(error).__name__}: "
            f"{error}); pass arrays or tensors (a Python generator cannot be re-read)."
        ) from error


def _rows(value: Any, count: int) -> np.ndarray:
    if hasattr(value, "numpy"):
        value = value.numpy()
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError("a scalar has no samples")
    return array[:count]


def _from_dataset(keras: Any, dataset: Any, samples: int) -> tuple[Any, Any]:
    xs, ys, rows = [], [], 0
    for element in dataset:
        bx, by, _ = keras.utils.unpack_x_y_sample_weight(element)
        if by is None:
            raise OverfitCheckError("the dataset yields no labels: it must yield (x, y).")
        xs.append(keras.tree.map_structure(lambda a: _rows(a, samples), bx))
        ys.append(keras.tree.map_structure(lambda a: _rows(a, samples), by))
        rows += _count_rows(keras, xs[-1])
        if rows >= samples:
            break
    if not xs:
        raise OverfitCheckError("the dataset is empty.")

    def join(*parts: Any) -> np.ndarray:
        return np.concatenate(parts)[:samples]

    return keras.tree.map_structure(join, *xs), keras.tree.map_structure(join, *ys)


def _count_rows(keras: Any, data: Any) -> int:
    leaves = keras.tree.flatten(data)
    return int(min((len(leaf) for leaf in leaves), default=0))


# ------------------------------------------------------------------ the copy


def copy_model(
    keras: Any,
    model: Any,
    xs: Any,
    reinitialize: bool,
    tool: str = "overfit_check",
    error: type[Exception] = OverfitCheckError,
) -> tuple[Any, str]:
    """A new model with the same architecture (and, unless asked not to, weights);
    also how it starts ("the model's current weights")."""
    try:
        # recursive: nested models are copied too, never shared with the original.
        copy = keras.models.clone_model(model, recursive=True)
    except Exception as failure:
        raise error(
            f"cannot copy the {type(model).__name__} model ({type(failure).__name__}: "
            f"{_first_line(failure)}). "
            f"{tool} copies Sequential and functional models, and subclassed models "
            "whose get_config() and from_config() rebuild them; implement get_config() or run "
            f"{tool} on a functional version of the model."
        ) from failure
    if copy is model:  # pragma: no cover - Keras never returns the original
        raise error("clone_model returned the model itself.")
    if not copy.built or len(copy.weights) != len(model.weights):
        try:
            copy(xs, training=False)
        except Exception as failure:
            raise error(
                f"the copy of {type(model).__name__} could not be built on the samples "
                f"({type(failure).__name__}: {failure})."
            ) from failure
    if reinitialize:
        return copy, "a fresh initialisation"
    source = model.get_weights()
    target = copy.weights
    if len(source) == len(target) and all(
        tuple(np.shape(s)) == tuple(t.shape) for s, t in zip(source, target)
    ):
        copy.set_weights(source)
        return copy, "the model's current weights"
    return copy, "a fresh initialisation (the copy's weights do not line up with the model's)"


def fresh_optimizer(
    optimizer: Any,
    learning_rate: float | None = None,
    error: type[Exception] = OverfitCheckError,
) -> Any:
    """The optimizer rebuilt from its config, with fresh state; at a constant
    `learning_rate` when given (a schedule in the config is replaced)."""
    try:
        config = optimizer.get_config()
        if learning_rate is not None:
            config = _with_learning_rate(config, float(learning_rate))
        return optimizer.__class__.from_config(config)
    except error:
        raise
    except Exception as failure:
        raise error(
            f"cannot rebuild the {type(optimizer).__name__} optimizer from its config "
            f"({type(failure).__name__}: {failure})."
        ) from failure


def _with_learning_rate(config: dict, rate: float) -> dict:
    config = dict(config)
    if "learning_rate" in config:
        config["learning_rate"] = rate
        return config
    inner = config.get("inner_optimizer")  # LossScaleOptimizer wraps the one that has the rate
    if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
        config["inner_optimizer"] = {
            **inner,
            "config": _with_learning_rate(inner["config"], rate),
        }
        return config
    raise ValueError("its config has no single learning_rate (a MultiOptimizer has one per part)")


def compile_copy(model: Any, copy: Any, optimizer: Any, loss: Any, metrics: list | None) -> None:
    """Compile the copy like the model (its loss weights), with this optimizer and loss."""
    loss_weights = None
    try:
        loss_weights = (model.get_compile_config() or {}).get("loss_weights")
    except Exception:
        loss_weights = None
    copy.compile(
        optimizer=optimizer,
        loss=loss,
        loss_weights=loss_weights,
        metrics=metrics,
        jit_compile=False,
    )


def _one_unit_categorical(loss: Any, ys: Any) -> bool:
    family, sparse, _ = _loss_kind(loss)
    shape: tuple[int, ...] = np.shape(ys) if not isinstance(ys, (list, tuple, dict)) else ()
    return family == "categorical" and not sparse and len(shape) >= 2 and shape[-1] == 1


def _accuracy_metric(loss: Any, ys: Any) -> str | None:
    """The accuracy metric that fits a single-output classifier's loss, if any."""
    if isinstance(ys, (list, tuple, dict)):
        return None
    family, sparse, from_logits = _loss_kind(loss)
    if family == "categorical":
        return "sparse_categorical_accuracy" if sparse else "categorical_accuracy"
    if family == "binary" and not from_logits:
        return "binary_accuracy"
    return None


def set_output_activation(
    keras: Any, copy: Any, activation: Any, error: type[Exception] = OverfitCheckError
) -> None:
    """Give the copy's output layer another activation (a single-output model's)."""
    layer = copy
    while isinstance(layer, keras.Model):  # a nested model's own output layer
        outputs = getattr(layer, "outputs", None)
        if isinstance(layer, keras.Sequential) and layer.layers:
            layer = layer.layers[-1]
        elif outputs and len(outputs) == 1:
            from tb_stagnation.compat.keras import producing_operation

            layer = producing_operation(outputs[0])
        else:
            raise error(
                "output_activation can be changed on Sequential and functional models "
                f"with one output; {type(copy).__name__} has "
                f"{len(outputs) if outputs else 'no known'} outputs."
            )
    if not hasattr(layer, "activation"):
        raise error(
            f"the output layer {layer.name!r} ({type(layer).__name__}) has no activation "
            "to change; set it in the model itself."
        )
    try:
        layer.activation = keras.activations.get(activation)
    except Exception as failure:
        raise error(f"unknown output_activation {activation!r} ({failure}).") from failure


def _loss_kind(loss: Any) -> tuple[str | None, bool, bool]:
    """(family, sparse, from_logits) of a single loss: see losses.loss_family."""
    if isinstance(loss, (list, tuple, dict)):
        return None, False, False
    name, from_logits = loss_name_and_logits(loss)
    return loss_family(name), is_sparse(name), from_logits


# ------------------------------------------------------------- the reference


def reference_loss(loss: Any, ys: Any) -> tuple[str | None, float | None, bool]:
    """(loss family, the best constant predictor's loss, whether the labels fit the loss).

    Labels outside what a cross-entropy accepts make a falling loss meaningless
    (it falls through 0), so such a run cannot pass.
    """
    if isinstance(loss, (list, tuple, dict)) or isinstance(ys, (list, tuple, dict)):
        return None, None, True
    name, _ = loss_name_and_logits(loss)
    family = loss_family(name)
    try:
        labels = np.asarray(ys, dtype=np.float64)
    except (TypeError, ValueError):
        return family, None, True
    if labels.size == 0 or not np.isfinite(labels).all():
        return family, None, True
    if family == "categorical" and is_sparse(name):
        ids = labels.reshape(-1)
        if (ids < 0).any() or (ids != np.round(ids)).any():
            return family, None, False
        return family, entropy(np.bincount(ids.astype(np.int64)) / ids.size), True
    if family == "categorical":
        # Over one unit a categorical cross-entropy is 0 whatever the model predicts.
        if labels.ndim < 2 or labels.shape[-1] < 2 or (labels < 0).any() or (labels > 1).any():
            return family, None, False
        return family, entropy(labels.reshape(-1, labels.shape[-1]).mean(axis=0)), True
    if family == "binary":
        if (labels < 0).any() or (labels > 1).any():
            return family, None, False
        rows = labels.reshape(labels.shape[0], -1)
        entropies = [entropy(np.array([p, 1 - p])) for p in rows.mean(axis=0)]
        return family, float(np.mean(entropies)), True
    if family == "mse":
        rows = labels.reshape(labels.shape[0], -1)
        return family, float(np.mean(rows.var(axis=0))), True
    return family, None, True


# ------------------------------------------------------------------ training


def _train(
    copy: Any,
    xs: Any,
    ys: Any,
    count: int,
    max_epochs: int,
    family: str | None,
    constant: float | None,
    valid: bool,
    metric: str | None,
) -> OverfitResult:
    curve: list[float] = []
    accuracy = None
    verdict = None
    reference = math.inf
    what = "initial loss"
    steps = 1 if not copy.trainable_weights else max_epochs
    for _ in range(steps):
        logs = copy.train_on_batch(xs, ys, return_dict=True)
        loss = float(logs["loss"])
        curve.append(loss)
        if metric and metric in logs:
            accuracy = float(logs[metric])
        if not math.isfinite(loss):
            verdict = "nonfinite"
            break
        if len(curve) == 1:
            reference = loss
            if constant is not None and constant > 1e-12 and constant < loss:
                reference, what = constant, "constant predictor"
        if family in ("binary", "categorical") and loss < NEGATIVE_LOSS:
            verdict = "negative"
            break
        if valid and (loss <= NEAR_ZERO * reference or accuracy == 1.0):
            verdict = "passed"
            break
        if len(curve) >= FLAT_STEPS and len(set(curve[-FLAT_STEPS:])) == 1:
            break  # nothing changes: judged below as stuck
    finite = [v for v in curve if math.isfinite(v)]
    initial = curve[0] if curve else math.nan
    best = min(finite) if finite else math.nan
    if verdict is None:
        stuck = not (best <= STUCK * reference) or len(set(curve[-FLAT_STEPS:])) == 1
        verdict = "stuck" if stuck else "slow"
    result = OverfitResult(
        passed=verdict == "passed",
        verdict=verdict,
        samples=count,
        epochs=len(curve),
        initial_loss=initial,
        final_loss=curve[-1] if curve else math.nan,
        best_loss=best,
        reference_loss=reference if math.isfinite(reference) else math.nan,
        reference=what,
        accuracy=accuracy,
        curve=curve,
        trainable_weights=len(copy.trainable_weights),
    )
    return result


def _message(result: OverfitResult, start: str, untrainable: bool) -> str:
    steps = f"{result.epochs} step{'s' if result.epochs != 1 else ''}"
    head = f"{result.samples} samples, {steps} from {start}"
    path = f"loss {_fmt(result.initial_loss)} -> {_fmt(result.final_loss)}"
    share = ""
    if math.isfinite(result.reference_loss) and result.reference_loss > 0:
        share = (
            f" ({result.best_loss / result.reference_loss:.0%} of the {result.reference} "
            f"{_fmt(result.reference_loss)} at best)"
        )
    accuracy = "" if result.accuracy is None else f", accuracy {result.accuracy:.0%}"
    if result.fix:
        return _fix_message(result, start, untrainable, steps, path, share, accuracy)
    if result.verdict == "passed":
        return f"can overfit: {path}{accuracy} ({head})."
    if untrainable:
        return f"cannot overfit: the model has no trainable weights ({head})."
    if result.verdict == "nonfinite":
        return f"cannot overfit: the loss became {_fmt(result.final_loss)} ({head})."
    if result.verdict == "negative":
        return (
            f"cannot overfit: the cross-entropy went negative ({path}), which no labels in "
            f"[0, 1] allow ({head})."
        )
    if result.verdict == "slow":
        return f"learns, but slowly: {path}{share}{accuracy}, not near 0 ({head})."
    return f"cannot overfit: {path}{share}{accuracy} ({head})."


def _fix_message(
    result: OverfitResult,
    start: str,
    untrainable: bool,
    steps: str,
    path: str,
    share: str,
    accuracy: str,
) -> str:
    """The answer to "does this change make it fit?", the change first."""
    checked = f"checked: with {result.fix} this model"
    fits = f"{result.samples} samples"
    if result.verdict == "passed":
        return f"{checked} fits {fits} in {steps} ({path}{accuracy}; from {start})."
    if untrainable:
        return f"{checked} still cannot fit {fits}: it has no trainable weights."
    if result.verdict == "nonfinite":
        return (
            f"{checked} does not fit {fits}: the loss became {_fmt(result.final_loss)} "
            f"after {steps} (from {start})."
        )
    if result.verdict == "negative":
        return (
            f"{checked} does not fit {fits}: the cross-entropy went negative ({path}), which no "
            f"labels in [0, 1] allow."
        )
    if result.verdict == "slow":
        return (
            f"{checked} learns but does not fit {fits} in {steps}: {path}{share}{accuracy} "
            f"(from {start})."
        )
    return f"{checked} does not fit {fits}: {path}{share}{accuracy} in {steps} (from {start})."
