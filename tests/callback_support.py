"""Shared helpers of the StagnationCallback tests (no tests of its own).

Logs are read back the way TensorBoard reads them: an `EventMultiplexer`
keeping every point of our plugin, behind a `MultiplexerDataProvider`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.data import provider

from tb_stagnation.summary import metadata, tags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class RunData:
    """Everything one `<log_dir>/stagnation` run holds, keyed by tag then step."""

    scalars: dict = field(default_factory=dict)  # tag -> {step: float}
    tensors: dict = field(default_factory=dict)  # tag -> {step: np.ndarray}
    runs: list = field(default_factory=list)  # every run TensorBoard found

    def scalar(self, tag: str) -> dict:
        return self.scalars.get(tag, {})

    def series(self, tag: str) -> list:
        values = self.scalar(tag)
        return [values[step] for step in sorted(values)]

    def layer(self, tag: str, step: int) -> np.ndarray:
        return np.asarray(self.tensors[tag][step], dtype=np.float64)

    def cards(self) -> dict:
        return {
            step: json.loads(value.item().decode("utf-8"))
            for step, value in self.tensors.get(tags.MODEL_CARD, {}).items()
        }

    def card(self) -> dict:
        cards = self.cards()
        assert len(cards) == 1, f"expected one model card, found steps {sorted(cards)}"
        return next(iter(cards.values()))


def read_run(log_dir: str, run: str = tags.RUN_SUBDIR) -> RunData:
    """Read `<log_dir>/<run>` through TensorBoard's data provider, every point kept."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0}
    )
    multiplexer.AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    data = data_provider.MultiplexerDataProvider(multiplexer, str(log_dir))
    ctx = context.RequestContext()
    result = RunData(runs=sorted(multiplexer.Runs()))
    only = provider.RunTagFilter(runs=[run])
    listing = data.list_scalars(
        ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME, run_tag_filter=only
    )
    if run in listing:
        read = data.read_scalars(
            ctx,
            experiment_id="",
            plugin_name=metadata.PLUGIN_NAME,
            downsample=100_000,
            run_tag_filter=only,
        )
        for tag, points in read.get(run, {}).items():
            result.scalars[tag] = {p.step: p.value for p in points}
    listing = data.list_tensors(
        ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME, run_tag_filter=only
    )
    if run in listing:
        read = data.read_tensors(
            ctx,
            experiment_id="",
            plugin_name=metadata.PLUGIN_NAME,
            downsample=100_000,
            run_tag_filter=only,
        )
        for tag, points in read.get(run, {}).items():
            result.tensors[tag] = {p.step: p.numpy for p in points}
    return result


def stagnation_warnings(records: list) -> list:
    """The warnings StagnationCallback itself issued, from `warnings.catch_warnings`."""
    return [r for r in records if "StagnationCallback" in str(r.message)]
