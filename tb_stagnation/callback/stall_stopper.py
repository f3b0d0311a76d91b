"""`stop_on_stall`: end `fit` once a stall is confirmed, like EarlyStopping.

At every epoch end the callback hands over what it has just written (the
epoch's scalars, per-layer vectors and label counts); the stopper keeps them,
builds the run so far as a `RunData` in memory (with the model card and the
pre-flight record) and runs the report's own analysis on it (`analyze_run`,
a few milliseconds). When the last `patience` epochs are all flagged as
stalled, it sets `model.stop_training` and prints the stall and its most
likely cause, with the evidence and the fix: the same diagnosis the tab and
`tb-stagnation report` show for the run.

With `on_report` (the LR range test's trigger, lr_range_trigger.py) the
analysis runs at every epoch end, from the first, and each report is handed
to it; the sentence it returns (the suggested rate) is printed with the stop
message, or on its own when training goes on. With `stops=False` the stopper
only watches: it analyses while `on_report` is set and never stops training.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from tb_stagnation.analysis import presentation
from tb_stagnation.analysis.report import analyze_run
from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, RunData
from tb_stagnation.callback.console import print_message

_WIDTH = 100


class StallStopper:
    """Decides, epoch by epoch, whether a stall is confirmed."""

    def __init__(
        self,
        patience: int,
        name: str = "run",
        *,
        stops: bool = True,
        on_report: Callable[[Any, dict, int], str | None] | None = None,
    ) -> None:
        self.patience = int(patience)
        self.name = name
        self.stops = bool(stops)
        # Called with (model, report, epoch) after each analysis; returns a
        # sentence for the stop message (or None). Set to None when done.
        self.on_report = on_report
        self.notes: list[str] = []
        self.stopped_epoch: int | None = None
        self.report: dict | None = None
        self._epochs: list[int] = []
        self._scalars: list[dict] = []
        self._layers: list[dict] = []
        self._counts: list = []

    def on_epoch_end(
        self,
        model: Any,
        epoch: int,
        scalars: dict,
        layer_stats: dict,
        class_counts: Any,
        card: dict | None,
        preflight: dict | None,
    ) -> bool:
        """Record the epoch; stop `model` (and print why) when the stall is confirmed."""
        self._epochs.append(int(epoch))
        self._scalars.append(dict(scalars))
        self._layers.append(
            {tag: np.asarray(v, np.float64).reshape(-1) for tag, v in layer_stats.items()}
        )
        self._counts.append(None if class_counts is None else np.asarray(class_counts, np.float64))
        if self.stopped_epoch is not None:
            return False
        confirmable = self.stops and len(self._epochs) >= self.patience
        if not confirmable and self.on_report is None:
            return False
        report = analyze_run(self.run_data(card, preflight))
        self.report = report
        note = self.on_report(model, report, int(epoch)) if self.on_report is not None else None
        if note:
            self.notes.append(note)
        stalled = set(report.get("stalled_epochs") or [])
        if not confirmable or not all(e in stalled for e in self._epochs[-self.patience :]):
            if note:
                print_message(f"StagnationCallback (epoch {int(epoch)}): {note}")
            return False
        self.stopped_epoch = int(epoch)
        model.stop_training = True
        print_message(self.message(report))
        return True

    def run_data(self, card: dict | None, preflight: dict | None) -> RunData:
        """The epochs seen so far as the reader would deliver them."""
        count = len(self._epochs)
        tags = sorted({tag for row in self._scalars for tag in row})
        scalars, present = {}, {}
        for tag in tags:
            values = np.full(count, np.nan)
            mask = np.zeros(count, dtype=bool)
            for i, row in enumerate(self._scalars):
                if tag in row:
                    values[i] = float(row[tag])
                    mask[i] = True
            scalars[tag], present[tag] = values, mask
        layer_stats = {}
        for tag in sorted({tag for row in self._layers for tag in row}):
            width = max(len(row[tag]) for row in self._layers if tag in row)
            matrix = np.full((count, width), np.nan)
            for i, row in enumerate(self._layers):
                if tag in row:
                    matrix[i, : len(row[tag])] = row[tag]
            layer_stats[tag] = matrix
        counts = None
        widths = {len(c) for c in self._counts if c is not None}
        if widths:
            counts = np.full((count, max(widths)), np.nan)
            for i, row in enumerate(self._counts):
                if row is not None:
                    counts[i, : len(row)] = row
        names = []
        for layer in (card or {}).get("layers") or []:
            names.append(str(layer.get("name")) if isinstance(layer, dict) else "")
        return RunData(
            name=self.name,
            source=SOURCE_CALLBACK,
            epochs=np.array(self._epochs, dtype=np.int64),
            scalars=scalars,
            scalar_present=present,
            layer_names=names,
            layer_stats=layer_stats,
            class_counts=counts,
            model_card=card,
            preflight=preflight,
        )

    def message(self, report: dict) -> str:
        """What is printed when training stops."""
        lines = presentation.stall_stop_lines(report, self.stopped_epoch, self.patience)
        for note in self.notes:  # the LR range test's answer, when it ran
            lines.extend(textwrap.wrap(note, _WIDTH, initial_indent="  ", subsequent_indent="    "))
        return "\n".join(lines)
