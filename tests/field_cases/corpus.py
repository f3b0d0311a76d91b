"""The field-case record and the training runner.

A `FieldCase` is one public report of a Keras training whose loss or accuracy
stayed flat (or the healthy twin of one: the same code with the answer's fix),
reproduced small on data that ships with a package or that numpy makes.
`build()` returns the compiled model and the keyword arguments of `fit`; the
runner adds `StagnationCallback` and `keras.callbacks.TensorBoard` on the same
`log_dir`, so one training is scored both with the callback's data and as a
plain-Keras past run (the `train/` and `validation/` folders alone).

Labels are written before running the analysis (shared/notes/field-cases.md):

- `stalled` and `stall_from` (the first epoch of the stall);
- `root`: codes acceptable as the report's top finding;
- `consequences`: codes that are true of the run only as consequences of the root;
- `keras_root`: the codes acceptable in the top 3 of a plain-Keras report when
  the cause is visible in the logged config or learning rate (empty: not visible);
- `false_text`: regular expressions that no evidence sentence may match
  (statements that would be false of this run);
- `also_true`: codes whose findings are true of the run without being the
  cause of a stall (warnings about a real trait of the data or model).
- `curve_hidden`: why Keras's own curves cannot show this stall, for a stall
  that a person reading only `keras.callbacks.TensorBoard`'s scalars (loss,
  accuracy, validation, learning rate), knowing nothing of the labels, inputs
  or data, could not tell from healthy training (empty: they can). Issue 13's
  plain-Keras recall counts the curve-visible stalls; the print shows both.

Every other finding code in a report is scored false, except `no_progress` on a
stalled run (it only says the loss stopped improving, which is then true).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HEALTHY = ()


@dataclass(frozen=True)
class Training:
    """What `build()` returns: a compiled model and the arguments of its `fit`."""

    model: Any
    fit: dict
    # Called instead of model.fit(**fit) when set (e.g. a custom loop around fit).
    run: Callable[[list], Any] | None = None


@dataclass(frozen=True)
class FieldCase:
    name: str
    url: str
    # What the asker did and the cause the accepted answer or maintainers gave,
    # and every way the reproduction departs from the thread.
    summary: str
    build: Callable[[], Training]
    stalled: bool
    stall_from: int | None = None
    root: tuple[str, ...] = ()
    consequences: tuple[str, ...] = ()
    keras_root: tuple[str, ...] = ()
    false_text: tuple[str, ...] = ()
    # Codes whose findings are true of the run without being its stall's cause
    # (a warning about raw 0-255 pixels on a twin that keeps them).
    also_true: tuple[str, ...] = ()
    twin_of: str | None = None
    curve_hidden: str = ""
    # Stall flags may start up to this many epochs after stall_from.
    stall_slack: int = 3

    @property
    def healthy(self) -> bool:
        return not self.stalled and not self.root


def all_cases() -> list[FieldCase]:
    """Every case of every `cases_*` module, in module then definition order."""
    import field_cases

    cases: list[FieldCase] = []
    for info in sorted(pkgutil.iter_modules(field_cases.__path__), key=lambda m: m.name):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"field_cases.{info.name}")
            cases.extend(module.CASES)
    names = [case.name for case in cases]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"duplicate field-case names: {sorted(duplicates)}")
    # One thread, one case: a twin shares its case's address, nothing else does.
    urls = [case.url for case in cases if case.twin_of is None]
    repeated = {url for url in urls if urls.count(url) > 1}
    if repeated:
        raise ValueError(f"field cases reproduce the same thread twice: {sorted(repeated)}")
    return cases


def seed_of(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % 10_000


def train(case: FieldCase, log_dir: str) -> dict:
    """Train one case into `log_dir` with both callbacks; returns a small summary."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # As in the tests (conftest.py), so `python -m field_cases.score --train`
    # scores the trainings CI scores: oneDNN's kernels round differently, and
    # a chaotic case (opt_rmsprop_cnn_diverges) diverged with them off and
    # trained with them on (2026-12-04). Read when TensorFlow is first imported.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras

    from tb_stagnation import StagnationCallback

    shutil.rmtree(log_dir, ignore_errors=True)
    keras.utils.set_random_seed(seed_of(case.name))
    started = time.perf_counter()
    training = case.build()
    callbacks = [
        StagnationCallback(log_dir=log_dir),
        keras.callbacks.TensorBoard(log_dir=log_dir),
    ]
    if training.run is not None:
        history = training.run(callbacks)
    else:
        fit = dict(training.fit)
        fit["callbacks"] = list(fit.get("callbacks", [])) + callbacks
        fit.setdefault("verbose", 0)
        history = training.model.fit(**fit)
    seconds = time.perf_counter() - started
    logs = getattr(history, "history", {}) or {}
    return {
        "seconds": round(seconds, 1),
        "loss": [round(float(v), 4) for v in logs.get("loss", [])],
        "accuracy": [round(float(v), 4) for v in logs.get("accuracy", logs.get("acc", []))],
    }


def keras_only_copy(run_dir: str, out_dir: str) -> None:
    """A copy of a run's logdir without our `stagnation/` folder: a plain-Keras past run."""
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.copytree(run_dir, out_dir, ignore=shutil.ignore_patterns("stagnation"))


__all__ = ["FieldCase", "HEALTHY", "Training", "all_cases", "keras_only_copy", "train"]
