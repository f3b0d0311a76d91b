"""A data provider that sees only the TensorBoard runs of one logical run.

`/report` and `/series` need the listing of one run, but listing through the
provider walks every run (TensorBoard's Python loader even visits every
stored point to find the newest step): 100 runs cost ~70 ms. Handing the
reader a provider narrowed to `<run>/stagnation`, `<run>/train` and
`<run>/validation` makes it one run's work with either loader, without
changing what the reader computes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tensorboard.data import provider as tb_provider

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
