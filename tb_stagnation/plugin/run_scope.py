"""A data provider that sees only the TensorBoard runs of one logical run.

`/report` and `/series` need the listing of one run, but listing through the
provider walks every run (TensorBoard's Python loader even visits every
stored point to find the newest step): 100 runs cost ~70 ms. Handing the
reader a provider narrowed to `<run>/stagnation`, `<run>/train` and
`<run>/validation` makes it one run's work with either loader, without
changing what the reader computes: TensorBoard's Python-loader provider is
made anew on a view of its multiplexer holding only those runs (it collects
the metadata of every run it holds for each call); any other provider gets
every call's run filter intersected with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tensorboard.data import provider as tb_provider

from tb_stagnation.compat import tensorboard as compat_tensorboard
from tb_stagnation.reader import run_names

# The provider methods that take a `run_tag_filter`.
_FILTERED_METHODS = frozenset(
    {
        "list_scalars",
        "read_scalars",
        "read_last_scalars",
        "list_tensors",
        "read_tensors",
        # reader/grpc_series.py's reads into arrays, when the provider has them.
        "read_scalar_series",
        "read_tensor_series",
        "list_blob_sequences",
        "read_blob_sequences",
    }
)
# Our roles, and the held-out folders other tools put beside `train/`.
_ROLES = (
    run_names.ROLE_STAGNATION,
    run_names.ROLE_TRAIN,
    run_names.ROLE_VALIDATION,
    *sorted(run_names.VALIDATION_FOLDERS),
)


def run_scoped(provider: Any, runs: Iterable[str]) -> Any:
    """`provider`, seeing only the TensorBoard runs `runs`.

    TensorBoard's Python-loader provider is made anew on a view of its
    multiplexer that holds only those runs: it would otherwise collect the
    metadata of every run for each call. Any other provider is wrapped in a
    RunScopedProvider.
    """
    parts = compat_tensorboard.multiplexer_provider_parts(provider)
    if parts is None:
        return RunScopedProvider(provider, runs)
    multiplexer, logdir = parts
    return type(provider)(_MultiplexerOfRuns(multiplexer, runs), logdir)


def tensorboard_runs(logical_run: str) -> list[str]:
    """The TensorBoard run names that can make up `logical_run`, including the
    one folder of another tool's run (reader/other_tools.py), named as it is."""
    if logical_run == run_names.ROOT_RUN:
        return [run_names.ROOT_RUN, *_ROLES]
    names = [logical_run, *(f"{logical_run}/{role}" for role in _ROLES)]
    # TensorBoard on Windows names runs with backslashes; the reader folds them
    # there. Elsewhere such a name is one folder, which the reader ignores.
    names += [f"{logical_run.replace('/', chr(92))}{chr(92)}{role}" for role in _ROLES]
    return list(dict.fromkeys(names))


class RunScopedProvider:
    """Delegates to `provider`, intersecting every run filter with `runs`."""

    def __init__(self, provider: tb_provider.DataProvider, runs: Iterable[str]) -> None:
        self._provider = provider
        self._runs = frozenset(runs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._provider, name)
        if name not in _FILTERED_METHODS:
            return method

        def scoped(*args, run_tag_filter=None, **kwargs):
            narrowed = self._narrow(run_tag_filter)
            if not narrowed.runs:
                # Not passed on: over gRPC an empty run list reads as "all runs".
                return {}
            return method(*args, run_tag_filter=narrowed, **kwargs)

        return scoped

    def _narrow(self, run_tag_filter) -> tb_provider.RunTagFilter:
        runs, tags = self._runs, None
        if run_tag_filter is not None:
            tags = run_tag_filter.tags
            if run_tag_filter.runs is not None:
                runs = self._runs & frozenset(run_tag_filter.runs)
        return tb_provider.RunTagFilter(runs=runs, tags=tags)


class _MultiplexerOfRuns:
    """TensorBoard's EventMultiplexer, as if it held only `runs`: the methods
    its `MultiplexerDataProvider` calls, run by run through `GetAccumulator`."""

    def __init__(self, multiplexer: Any, runs: Iterable[str]) -> None:
        self._multiplexer = multiplexer
        self._runs = frozenset(runs)

    def AllSummaryMetadata(self) -> dict[str, Any]:  # noqa: N802 - TensorBoard's name
        found = {}
        for run in self._runs:
            try:
                accumulator = self._multiplexer.GetAccumulator(run)
            except KeyError:
                continue
            found[run] = accumulator.AllSummaryMetadata()
        return found

    def Runs(self) -> dict[str, Any]:  # noqa: N802
        return {run: tags for run, tags in self._multiplexer.Runs().items() if run in self._runs}

    def ActivePlugins(self) -> Any:  # noqa: N802
        return self._multiplexer.ActivePlugins()

    def SummaryMetadata(self, run: str, tag: str) -> Any:  # noqa: N802
        return self._multiplexer.SummaryMetadata(self._known(run), tag)

    def Tensors(self, run: str, tag: str) -> Any:  # noqa: N802
        return self._multiplexer.Tensors(self._known(run), tag)

    def FirstEventTimestamp(self, run: str) -> Any:  # noqa: N802
        return self._multiplexer.FirstEventTimestamp(self._known(run))

    def _known(self, run: str) -> str:
        # What the multiplexer raises for a run it does not hold.
        if run not in self._runs:
            raise KeyError(run)
        return run
