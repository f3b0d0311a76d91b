"""One tag's points, column-wise: steps, wall times and values as arrays.

TensorBoard's data providers answer with one Python object per point. A logdir
of 100 runs x 300 epochs holds about 800,000 of our points, and building them
and then aligning them one by one was most of a CLI report's time. The
reader's own gRPC provider (`grpc_series.py`) fills these arrays straight from
the data server's answer; another provider's points are converted once, as
they are read. Everything after the read (alignment to epochs, the newest
epoch in flight) works on arrays.

A `TensorSeries` is also a sequence of TensorBoard's `TensorDatum`, made on
access, for the few readers that want a point (the newest model card, Keras's
weight histograms).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np
from tensorboard.data import provider as tb_provider


class ScalarSeries:
    """A scalar tag's points in the order the provider gave them.

    `values` is float64; a point whose value is not a number (a foreign
    writer's string, say) holds NaN there and False in `numeric`: it counts as
    absent, where a logged NaN is present.
    """

    __slots__ = ("steps", "values", "numeric")

    def __init__(self, steps: np.ndarray, values: np.ndarray, numeric: np.ndarray) -> None:
        self.steps = steps
        self.values = values
        self.numeric = numeric

    def __len__(self) -> int:
        return len(self.steps)

    @classmethod
    def from_points(cls, points: Sequence[Any]) -> ScalarSeries:
        """From a provider's `ScalarDatum` list."""
        count = len(points)
        steps = np.fromiter((point.step for point in points), np.int64, count)
        try:
            values = np.fromiter((point.value for point in points), np.float64, count)
            numeric = np.ones(count, dtype=bool)
        except (TypeError, ValueError, OverflowError):
            floats = [_float_or_none(point.value) for point in points]
            numeric = np.fromiter((value is not None for value in floats), bool, count)
            values = np.fromiter(
                (np.nan if value is None else value for value in floats), np.float64, count
            )
        return cls(steps, values, numeric)


class TensorSeries(Sequence):
    """A tensor tag's points in the order the provider gave them.

    `rows` holds each point's array: a 2-D array whose rows are the points
    when every point is a vector of one width (read in one piece), else a
    list of the arrays as TensorBoard decoded them.
    """

    __slots__ = ("steps", "wall_times", "rows")

    def __init__(
        self, steps: np.ndarray, wall_times: np.ndarray, rows: np.ndarray | list[Any]
    ) -> None:
        self.steps = steps
        self.wall_times = wall_times
        self.rows = rows

    @classmethod
    def from_points(cls, points: Sequence[Any]) -> TensorSeries:
        """From a provider's `TensorDatum` list."""
        count = len(points)
        return cls(
            np.fromiter((point.step for point in points), np.int64, count),
            np.fromiter((point.wall_time for point in points), np.float64, count),
            [point.numpy for point in points],
        )

    @property
    def is_matrix(self) -> bool:
        return isinstance(self.rows, np.ndarray) and self.rows.ndim == 2

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, index: int) -> tb_provider.TensorDatum: ...

    @overload
    def __getitem__(self, index: slice) -> list[tb_provider.TensorDatum]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return tb_provider.TensorDatum(
            step=int(self.steps[index]),
            wall_time=float(self.wall_times[index]),
            numpy=self.rows[index],
        )


def positions_in(epochs: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `steps`, its index in the sorted, unique `epochs`, and
    whether it is there at all."""
    if not len(epochs):
        return np.zeros(len(steps), dtype=np.intp), np.zeros(len(steps), dtype=bool)
    positions = np.minimum(np.searchsorted(epochs, steps), len(epochs) - 1)
    return positions, epochs[positions] == steps


def union_of_steps(series: Iterable[ScalarSeries | TensorSeries], up_to: int) -> np.ndarray:
    """The sorted steps any of `series` has, none past `up_to`."""
    arrays = [item.steps for item in series]
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    steps = np.unique(np.concatenate(arrays))
    return steps[steps <= up_to]


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None
