"""The listing memo of `/runs` (reader/listing_memo.py) against full listings.

Its contract: `memo.listings(list_ours)` answers what `list_ours(None, None)`
answers now, while listing in full only the runs that changed. Checked on
TensorBoard's Python loader as runs grow between reloads, and on the Rust
data server.
"""

from __future__ import annotations

import os

import pytest
from plugin_support import ServedPlugin, write_callback_run
from tensorboard import context as tb_context
from tensorboard.backend.event_processing import (
    data_ingester,
    data_provider,
    plugin_event_multiplexer,
)

from tb_stagnation.reader.listing_memo import ListingMemo
from tb_stagnation.reader.logdir import _data_server_binary, _data_server_provider
from tb_stagnation.reader.provider_reader import ProviderReader
from tb_stagnation.summary import metadata, tags
from tb_stagnation.summary.writer import SummaryWriter

GAN_LOGS = {tags.logs_tag("d_loss"): 1.0, tags.logs_tag("g_loss"): 2.0}


class Lister:
    """Our plugin's listing through a real provider, recording the filters asked."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.filters: list[tuple] = []

    def __call__(self, scalar_filter, tensor_filter):
        self.filters.append((scalar_filter, tensor_filter))
        return self.full(scalar_filter, tensor_filter)

    def full(self, scalar_filter=None, tensor_filter=None):
        ctx = tb_context.RequestContext()
        common = {"experiment_id": "", "plugin_name": metadata.PLUGIN_NAME}
        return (
            self.provider.list_scalars(ctx, run_tag_filter=scalar_filter, **common),
            self.provider.list_tensors(ctx, run_tag_filter=tensor_filter, **common),
        )

    def runs_listed_in_full(self) -> list:
        """The runs of each call that asked for every tag (None: of every run)."""
        return [
            None if scalars is None else sorted(scalars.runs)
            for scalars, _ in self.filters
            if scalars is None or scalars.tags is None
        ]


class PythonLoader:
    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.multiplexer = plugin_event_multiplexer.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
            tensor_size_guidance={**data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE, "stagnation": 0},
        )
        self.reload()
        self.provider = data_provider.MultiplexerDataProvider(self.multiplexer, logdir)

    def reload(self) -> None:
        self.multiplexer.AddRunsFromDirectory(self.logdir)
        self.multiplexer.Reload()


def _append_values(run_dir: str, step: int, **values) -> None:
    """One more event in `run_dir/stagnation`, as a later write of the callback."""
    writer = SummaryWriter(os.path.join(run_dir, tags.RUN_SUBDIR), flush_secs=3600)
    writer.write_step(step, wall_time=1.8e9 + step, **values)
    writer.close()


def _add_lr_range_record(run_dir: str, step: int) -> None:
    writer = SummaryWriter(os.path.join(run_dir, tags.RUN_SUBDIR), flush_secs=3600)
    writer.write_lr_range(step, {"version": 1, "points": []})
    writer.close()


def test_memo_answers_the_full_listing_and_relists_only_runs_that_changed(tmp_path):
    logdir = str(tmp_path)
    for name in ("a", "b"):
        write_callback_run(os.path.join(logdir, name), epochs=3)
    loader = PythonLoader(logdir)
    lister = Lister(loader.provider)
    now = [0.0]
    memo = ListingMemo(refresh_all_seconds=300, monotonic=lambda: now[0])

    def listed_in_full():
        lister.filters.clear()
        assert memo.listings(lister) == lister.full()
        return lister.runs_listed_in_full()

    # The first answer lists everything; the next confirms every run.
    assert listed_in_full() == [None]
    assert listed_in_full() == [["a/stagnation", "b/stagnation"]]
    # Settled: only the sentinel tags are listed.
    assert listed_in_full() == []
    sentinel_scalars, sentinel_tensors = lister.filters[0]
    assert sentinel_scalars.runs is None and tags.logs_tag("loss") in sentinel_scalars.tags
    assert set(sentinel_tensors.tags) == {tags.MODEL_CARD, tags.PREFLIGHT, tags.LR_RANGE}

    # A new epoch of `a`: it alone is listed again, twice (changed, then confirmed).
    write_callback_run(os.path.join(logdir, "a"), epochs=1, start=3)
    loader.reload()
    assert listed_in_full() == [["a/stagnation"]]
    # Values of that epoch that TensorBoard loads after the sentinel's (the
    # Python loader adds an event's values one at a time): the confirming
    # listing sees them, and one more confirms those.
    _append_values(os.path.join(logdir, "a"), 3, scalars={tags.INPUT_STD: 2.0})
    loader.reload()
    assert listed_in_full() == [["a/stagnation"]]
    assert listed_in_full() == [["a/stagnation"]]
    assert listed_in_full() == []

    # A new run, and a record of an LR range test added to `b` (a tensor sentinel).
    write_callback_run(os.path.join(logdir, "c"), epochs=2)
    _add_lr_range_record(os.path.join(logdir, "b"), 2)
    loader.reload()
    assert listed_in_full() == [["b/stagnation", "c/stagnation"]]
    assert listed_in_full() == [["b/stagnation", "c/stagnation"]]
    assert listed_in_full() == []

    # Batch points (update_freq) are sentinels of the runs that have them.
    _append_values(os.path.join(logdir, "c"), 40, scalars={tags.BATCH_LOSS: 0.5})
    loader.reload()
    assert listed_in_full() == [["c/stagnation"]]
    assert listed_in_full() == [["c/stagnation"]]
    _append_values(os.path.join(logdir, "c"), 41, scalars={tags.BATCH_LOSS: 0.4})
    loader.reload()
    assert listed_in_full() == [["c/stagnation"]]

    # A settled run whose new values carry no sentinel tag is seen at the
    # periodic full listing.
    for _ in range(2):
        listed_in_full()
    _append_values(os.path.join(logdir, "b"), 9, scalars={tags.INPUT_STD: 2.0})
    loader.reload()
    now[0] += 301
    assert listed_in_full() == [None]


def test_a_run_without_the_default_sentinels_is_watched_through_its_newest_tag(tmp_path):
    """A custom train_step's logs have no `loss`, and a run may lack `batches/seen`."""
    run_dir = os.path.join(str(tmp_path), "gan")
    writer = SummaryWriter(os.path.join(run_dir, tags.RUN_SUBDIR), flush_secs=3600)
    for epoch in range(3):
        writer.write_step(epoch, scalars=GAN_LOGS)
    writer.close()
    loader = PythonLoader(str(tmp_path))
    lister = Lister(loader.provider)
    memo = ListingMemo()
    for _ in range(3):
        assert memo.listings(lister) == lister.full()
    _append_values(run_dir, 3, scalars=GAN_LOGS)
    loader.reload()
    lister.filters.clear()
    assert memo.listings(lister) == lister.full()
    assert lister.runs_listed_in_full() == [["gan/stagnation"]]


@pytest.mark.skipif(
    _data_server_binary() is None, reason="tensorboard-data-server is not installed"
)
def test_memo_and_full_listing_agree_on_the_rust_data_server(tmp_path):
    logdir = str(tmp_path)
    for name in ("a", "b"):
        write_callback_run(os.path.join(logdir, name), epochs=3)
    _add_lr_range_record(os.path.join(logdir, "b"), 2)
    with _data_server_provider(_data_server_binary(), logdir) as provider:
        reader = ProviderReader(provider)
        memo = ListingMemo()
        full = reader.list_runs()
        assert set(full) == {"a", "b"}
        # Full, confirming, then from the sentinels alone.
        for _ in range(3):
            assert reader.list_runs(memo) == full


def test_runs_route_shows_new_epochs_of_a_settled_run(tmp_path):
    """Through the served plugin: `/runs` keeps a memo and still sees every new epoch."""
    logdir = str(tmp_path)
    for name in ("a", "b"):
        write_callback_run(os.path.join(logdir, name), epochs=3)
    served = ServedPlugin(logdir)

    def epochs():
        return {row["run"]: row["epochs"] for row in served.get_json("/runs")["runs"]}

    for _ in range(3):  # listed in full, confirmed, then from the sentinels
        assert epochs() == {"a": 3, "b": 3}
    write_callback_run(os.path.join(logdir, "b"), epochs=2, start=3)
    write_callback_run(os.path.join(logdir, "c"), epochs=1)
    served.reload(logdir)
    assert epochs() == {"a": 3, "b": 5, "c": 1}
