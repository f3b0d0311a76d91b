"""The pre-flight of one `fit`: what cannot work, said before training goes on.

Data flow (the callback calls three methods):

1. `start` (the first batch's spec is known, nothing traced yet): the label
   facts of the spec (shape, dtype) and the model card. When the labels'
   shape contradicts the loss (categorical loss with class ids, sparse loss
   with one-hot rows), Keras will refuse the first step: the problem is
   printed and logged now. Returns the recorder with `FirstBatchCapture`
   tapped in, which sees the first batch's labels in the train step.
2. `after_batch` (after each training batch until done; one host read): the
   first batch's label range, the recorder's input and label statistics so
   far. `analysis.preflight_check.check` runs the report's detectors on them; what
   it finds is printed once as a `PreflightWarning` and logged (FORMAT.md
   `preflight`), where the report and the tab pick it up. "All labels are one
   class" waits for `LABELS_TO_CONFIRM` labels (a few batches) so an
   imbalanced data set cannot trip it by chance. With `overfit_samples`, the
   tiny-subset test runs as soon as that many samples (probe inputs, captured
   labels) are in, and its answer is printed and logged too.
3. The callback calls `after_batch(epoch_end=True)` before it reads the
   epoch's statistics, so whatever is still waiting is decided then.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tb_stagnation.analysis import preflight as checks
from tb_stagnation.analysis import presentation
from tb_stagnation.analysis.detectors import label_encoding
from tb_stagnation.analysis.preflight_check import check
from tb_stagnation.analysis.series import finite_or_none
from tb_stagnation.callback import epoch_stats, model_info
from tb_stagnation.callback.console import print_message, warn_at_user_code
from tb_stagnation.callback.first_batch import FirstBatchCapture, TappedRecorder
from tb_stagnation.summary import metadata, tags

# Samples the tiny-subset test trains on (the playbook's number).
OVERFIT_SAMPLES = 20


class PreflightWarning(UserWarning):
    """A pre-flight problem: filter or escalate it with `warnings` (e.g. in CI)."""


class Preflight:
    """The pre-flight checks (and, on request, the tiny-subset test) of one fit."""

    def __init__(self, *, checks_enabled: bool, overfit_samples: int, log_dir: str) -> None:
        self.checks_enabled = bool(checks_enabled)
        # Set on a non-chief worker: it creates the variables, prints and writes nothing.
        self.quiet = False
        self.overfit_samples = int(overfit_samples)
        self.log_dir = log_dir
        self.facts: dict = {"format_version": metadata.FORMAT_VERSION}
        self.pending = False
        self._checks_done = not self.checks_enabled
        self._overfit_done = self.overfit_samples <= 0
        self._reported: set[str] = set()
        self._printed: list[dict] = []
        self._new: list[dict] = []
        self._writer: Any = None
        self._step = 0
        self._card: dict | None = None
        self._model: Any = None
        self._recorder: Any = None
        self._capture: FirstBatchCapture | None = None
        self._label_plan: Any = None
        self._x_spec: Any = None
        # The loss_output_mismatch finding whose fix names a loss or an output
        # activation, and that change as `overfit_check(fix=...)` takes it.
        self._fix_finding: dict | None = None
        self._fix: dict | None = None

    # ------------------------------------------------------------ stage 1: spec

    def start(
        self,
        tf: Any,
        keras: Any,
        model: Any,
        *,
        card: dict | None,
        outputs: list,
        stats_index: int | None,
        label_plan: Any,
        x_spec: Any,
        y_spec: Any,
        recorder: Any,
        writer: Any,
        step: int,
        on_error: Any,
    ) -> Any:
        """Check the spec; return the recorder with the capture tapped in (or None)."""
        self._writer, self._step, self._card = writer, int(step), card
        self._model, self._recorder, self._label_plan = model, recorder, label_plan
        self._x_spec = x_spec
        index = stats_index if stats_index is not None else (0 if len(outputs) == 1 else None)
        names = tuple(o.name for o in outputs)
        target = (
            model_info.select_target(y_spec, index, list(names), keras)
            if index is not None and y_spec is not None
            else None
        )
        if target is not None and getattr(target, "shape", None) is not None:
            assert index is not None  # a target is only selected with an index
            rank = target.shape.rank
            self.facts["labels"] = {
                "output": names[index] if index < len(names) else None,
                "shape": None
                if rank is None
                else [None if d is None else int(d) for d in target.shape],
                "dtype": getattr(getattr(target, "dtype", None), "name", None),
            }
        if self.checks_enabled:
            problem = label_encoding.check(card or {}, self.facts.get("labels"))
            if problem is not None and problem.fatal:
                # Keras refuses these labels at the first step: say why first.
                self._collect(check(card, self.facts, step=self._step))
                self._flush()
        if index is None or target is None:
            # No labels to look at: the checks use the card and the inputs only.
            self._skip_overfit()
            self.pending = not self._checks_done
            return None
        self._capture = FirstBatchCapture(
            tf,
            keras,
            model.distribute_strategy,
            output_index=index,
            output_names=names,
            y_spec=y_spec,
            rows=self.overfit_samples if getattr(recorder, "probe_vars", None) else 0,
            # The recorder's choice, made once for this fit's train step.
            unlowered_conds=recorder.plan.unlowered_conds,
        )
        if not self._capture.capacity:
            self._skip_overfit()
        self.pending = not (self._checks_done and self._overfit_done)
        capture = self._capture
        return TappedRecorder(recorder, capture, lambda x, y: capture.record(y), on_error)

    def _skip_overfit(self) -> None:
        if not self._overfit_done:
            self._overfit_done = True
            if self.quiet:
                return
            print_message(
                "tb_stagnation pre-flight: overfit_check needs dense numeric inputs and labels "
                "of a fixed shape, and probe_size > 0; skipped. Run "
                "tb_stagnation.overfit_check(model, x, y) yourself."
            )

    # ----------------------------------------------------------- stage 2: batch

    def after_batch(self, epoch_end: bool = False) -> None:
        """Run what the batches seen so far allow; `epoch_end` decides what still waits."""
        if not self.pending:
            return
        changed = False
        if not self._checks_done:
            changed = self._run_checks(epoch_end)
        if self._checks_done and not self._overfit_done:
            changed = self._run_overfit(epoch_end) or changed
        self.pending = not (self._checks_done and self._overfit_done)
        # A fix the 20-sample test will check waits for it: one warning, with the answer.
        holding = self._fix is not None and not self._overfit_done
        if (changed or self._new) and not holding:
            self._flush()

    def _run_checks(self, epoch_end: bool) -> bool:
        scalars: dict = {}
        counts = None
        readout = None
        if self._recorder is not None:
            readout = self._recorder.read()
            scalars, counts = epoch_stats.data_stats(readout, self._label_plan)
        labels_seen = float(np.nansum(counts)) if counts is not None else 0.0
        if not labels_seen and self._capture is not None:
            labels_seen = float((self._capture.facts() or {}).get("count") or 0)
        if not epoch_end and checks.needs_more_labels(
            counts, scalars.get(tags.LABEL_VARIANCE), labels_seen
        ):
            return False
        if self._capture is not None:
            facts = self._capture.facts()
            if facts is not None:
                self.facts.setdefault("labels", {}).update(facts)
        seen = scalars.get(tags.BATCHES_SEEN)
        if seen:
            self.facts["batches"] = int(seen)
        if readout is not None:
            self.facts["samples"] = int(readout.data.samples)
        inputs = {
            key: finite_or_none(scalars.get(tag))
            for key, tag in (
                ("mean", tags.INPUT_MEAN),
                ("std", tags.INPUT_STD),
                ("max_abs", tags.INPUT_MAX_ABS),
            )
            if tag in scalars
        }
        if inputs:
            self.facts["inputs"] = inputs
        if counts is not None:
            self.facts["class_counts"] = [finite_or_none(c) for c in np.asarray(counts).reshape(-1)]
        self._collect(check(self._card, self.facts, scalars, counts, self._step))
        self._find_fix()
        self._checks_done = True
        return True

    def _find_fix(self) -> None:
        """Note the new loss_output_mismatch finding whose fix `overfit_check` can try.

        The change comes from the detector's own record (`label_encoding.Problem`),
        the one its fix sentence was written from; a finding of another check
        (model.py's card-only ones) has no machine-readable change and stays unchecked.
        """
        problem = label_encoding.check(self._card or {}, self.facts.get("labels"))
        if problem is None or problem.fatal or not problem.suggested_fix:
            return
        for finding in self._new:
            if finding["code"] == "loss_output_mismatch" and finding.get("fix") == problem.fix:
                if self._overfit_done:
                    finding["check_hint"] = (
                        "StagnationCallback(overfit_check=True) would test this change on "
                        f"{OVERFIT_SAMPLES} samples before you retrain."
                    )
                    return
                self._fix_finding, self._fix = finding, dict(problem.suggested_fix)
                return

    def _run_overfit(self, epoch_end: bool) -> bool:
        from tb_stagnation.overfit import OverfitCheckError, overfit_check

        capture, recorder = self._capture, self._recorder
        labels = capture.label_rows() if capture is not None else None
        inputs = recorder.read_probe() if recorder is not None else None
        if labels is None or not inputs:
            if epoch_end:
                self._overfit_done = True
            return False
        keras = _keras()
        rows = min(
            min(len(leaf) for leaf in inputs),
            min(len(leaf) for leaf in keras.tree.flatten(labels)),
        )
        if rows < self.overfit_samples and not epoch_end:
            return False
        self._overfit_done = True
        if rows < 2:
            return False
        x = keras.tree.pack_sequence_as(self._x_spec, [leaf[:rows] for leaf in inputs])
        y = keras.tree.map_structure(lambda leaf: leaf[:rows], labels)
        try:
            result = overfit_check(self._model, x, y, samples=rows)
        except OverfitCheckError as error:
            print_message(f"tb_stagnation pre-flight: overfit_check skipped: {error}")
            return False
        self.facts["overfit"] = result.to_json()
        if result.passed:
            print_message(f"tb_stagnation pre-flight: the model {result.message}")
        found = check(self._card, self.facts, step=self._step, keep_explained=True)
        self._collect([f for f in found if f["code"] == "overfit_failure"])
        self._check_fix(x, y, rows)
        return True

    def _check_fix(self, x: Any, y: Any, rows: int) -> None:
        """Re-run the tiny-subset test with the finding's suggested change, once.

        Bounded by `overfit_check`'s own step cap; any failure is one printed
        line, and the finding then says nothing about a check.
        """
        from tb_stagnation.overfit import overfit_check

        finding, fix = self._fix_finding, self._fix
        self._fix_finding = self._fix = None
        if finding is None or fix is None:
            return
        try:
            result = overfit_check(self._model, x, y, samples=rows, fix=fix)
        except Exception as error:  # a check must never stop training
            print_message(
                "tb_stagnation pre-flight: could not check the suggested fix "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."
            )
            return
        message = result.message
        # OverfitResult's fix message starts "checked: with ... this model ...".
        finding["checked"] = message[:1].upper() + message[1:]

    # ----------------------------------------------------------------- output

    def _collect(self, findings: list[dict]) -> None:
        """Keep the findings not reported yet for the next `_flush`."""
        for finding in findings:
            if finding["code"] not in self._reported:
                self._reported.add(finding["code"])
                self._new.append(finding)

    def _flush(self) -> None:
        """Print what is new in one block, and log the record (FORMAT.md `preflight`)."""
        new, self._new = self._new, []
        if self.quiet:
            return
        if new:
            self._printed.extend(new)
            self.facts["findings"] = list(self._printed)
        if self._writer is not None:
            self._writer.write_preflight(self._step, self.facts)
            self._writer.flush()
        if new:
            where = self.log_dir if self._writer is not None else None
            block = presentation.preflight_block(new, self.facts, where)
            warn_at_user_code(block, PreflightWarning)


def _keras() -> Any:
    import keras

    return keras
