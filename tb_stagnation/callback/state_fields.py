"""The recorder's packed state: every in-graph statistic, declared once.

`GraphRecorder` keeps one float64 vector per replica (one variable instead of
eight: each variable an XLA-compiled step reads or writes costs a few
microseconds of its own). This module says what lives in it. The state is a
run of blocks; a block is a run of fields that the graph writes as one piece
(one slice of the `concat` in `GraphRecorder._write_state`). Each field
declares its name (unique over the whole state), its width (a function of the
plan: number of layers, label width), its initial value and when it is reset;
each block declares how the host combines the replicas' copies and which
function decodes it.

`StateLayout` computes the offsets from these declarations; the graph packs
its updates by field name (`StateLayout.pack`, checked at trace time, no op of
its own) and the host reads named fields (`BlockView`: `readout.data.batches`,
`readout.grad.norm_sum`). Nothing outside this module knows an offset.

Counters are float64 too (exact below 2**53).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np

# Reset policies.
EPOCH = "epoch"  # back to its initial value at every epoch end, after the read
FIT = "fit"  # kept for the whole fit

# How the host combines the copies of a block the replicas of this process hold.
SUM = "sum"  # additive statistics: each replica adds its own share
MAX = "max"  # running maxima
FIRST = "first"  # replica 0's copy (values every replica holds alike, or replica 0 alone writes)
LOCAL = "local"  # never combined: the host reads each replica's copy on its own


@dataclass(frozen=True)
class Shape:
    """What field widths depend on."""

    layers: int  # layers of the model the recorder measures
    label_width: int  # `LabelPlan.width`, 0 without a label plan


Width = Callable[[Shape], int]


def one(shape: Shape) -> int:
    """A single number: read back as a numpy scalar, not an array."""
    return 1


def per_layer(shape: Shape) -> int:
    """One entry per layer, then the global one (index `layers`)."""
    return shape.layers + 1


def label_width(shape: Shape) -> int:
    """The label block of `LabelPlan` (its layout is `LabelPlan.width`'s)."""
    return shape.label_width


@dataclass(frozen=True)
class Field:
    name: str
    doc: str
    width: Width = one
    reset: str = EPOCH
    initial: float = 0.0

    @property
    def scalar(self) -> bool:
        return self.width is one


@dataclass(frozen=True)
class Block:
    name: str
    combine: str
    # The host function that turns the block into logged values (for readers
    # of this table; a test checks that it exists).
    decoded_by: str
    fields: tuple[Field, ...]


# The state, in order. The graph updates live in graph_recorder.py
# (`record_data`, `record_gradients`); each says which fields it packs.
BLOCKS: tuple[Block, ...] = (
    Block(
        "data",
        SUM,
        "epoch_stats.data_stats",
        (
            # Every step (record_data).
            Field("batches", "training steps"),
            Field("samples", "samples, summed over steps"),
            Field("input_sum", "sum of every input entry (the mean)"),
            Field("input_count", "input entries"),
            # Measured steps only (every gradient_freq-th): the spread, from
            # which the std is recombined on the host (Chan et al.).
            Field("spread_sum", "sum of input entries on measured steps"),
            Field("spread_m2", "within-batch M2 of the inputs on measured steps"),
            Field("spread_q", "sum^2 / n per measured batch"),
            Field("spread_count", "input entries on measured steps"),
            # Every step; its layout is the task's (LabelPlan.width).
            Field("labels", "class counts, or regression rows, M2, Q, S", label_width),
        ),
    ),
    Block(
        "grad",
        SUM,
        "epoch_stats.gradient_stats",
        (
            # Measured steps only (record_gradients).
            Field("norm_sum", "sum over measured steps of the finite L2 norms", per_layer),
            Field("finite_steps", "measured steps whose norm was finite", per_layer),
            Field("nonfinite", "NaN/Inf gradient entries", per_layer),
            Field("entries", "gradient entries looked at", per_layer),
            Field("measured_steps", "measured steps"),
        ),
    ),
    Block(
        "counters",
        LOCAL,
        "GraphRecorder.drain_fingerprints",
        (
            Field("step", "training steps this epoch (record_data counts them)"),
            Field("ring_count", "fingerprints written this epoch"),
            Field("probe_count", "probe rows filled", reset=FIT),
        ),
    ),
    Block(
        "maxima",
        MAX,
        "epoch_stats.data_stats",
        (
            Field("max_abs", "largest |input| (measured steps)"),
            Field("largest_batch", "largest batch (samples in one replica's step)"),
        ),
    ),
    Block(
        "batch",
        FIRST,
        "GraphRecorder.read_batch_values",
        (
            Field("last_loss", "last step's loss", reset=FIT, initial=float("nan")),
            Field(
                "last_grad_norm", "last measured global grad norm", reset=FIT, initial=float("nan")
            ),
            Field("last_grad_step", "in-epoch step it was measured at", reset=FIT, initial=-1.0),
        ),
    ),
)

Index = Union[int, slice]


def _check_declarations(blocks: Sequence[Block]) -> None:
    names = [b.name for b in blocks] + [f.name for b in blocks for f in b.fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"state names declared twice: {duplicates}")
    for block in blocks:
        for f in block.fields:
            if f.reset not in (EPOCH, FIT):
                raise ValueError(f"field {f.name}: unknown reset policy {f.reset!r}")
        if block.combine not in (SUM, MAX, FIRST, LOCAL):
            raise ValueError(f"block {block.name}: unknown combine policy {block.combine!r}")


_check_declarations(BLOCKS)


class BlockView:
    """One block of the state as numpy, its fields by name.

    Scalar fields read as numpy scalars, the others as array views:
    `view.batches`, `view["norm_sum"]`; `view["batches"] = 3.0` writes.
    """

    __slots__ = ("values", "_fields")

    def __init__(self, values: np.ndarray, fields: Mapping[str, Index]) -> None:
        self.values = values  # the whole block
        self._fields = fields  # name -> index or slice within the block

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.values[self._fields[name]]
        except KeyError:
            raise AttributeError(f"no state field {name!r} in this block") from None

    def __getitem__(self, name: str) -> Any:
        return self.values[self._fields[name]]

    def __setitem__(self, name: str, value: Any) -> None:
        self.values[self._fields[name]] = value

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={self.values[index]!r}" for name, index in self._fields.items())
        return f"BlockView({parts})"


@dataclass(frozen=True)
class StateLayout:
    """Where every declared field lives in the state vector, for one plan."""

    shape: Shape
    blocks: tuple[Block, ...] = BLOCKS
    # Block or field name -> slice of the state.
    spans: dict = field(init=False, repr=False, compare=False)
    # Block name -> {field name: index (scalars) or slice in the block}.
    within: dict = field(init=False, repr=False, compare=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        spans: dict[str, slice] = {}
        within: dict[str, dict[str, Index]] = {}
        offset = 0
        for block in self.blocks:
            start = offset
            inner: dict[str, Index] = {}
            for f in block.fields:
                width = int(f.width(self.shape))
                spans[f.name] = slice(offset, offset + width)
                inner[f.name] = (
                    offset - start if f.scalar else slice(offset - start, offset - start + width)
                )
                offset += width
            spans[block.name] = slice(start, offset)
            within[block.name] = inner
        object.__setattr__(self, "spans", spans)
        object.__setattr__(self, "within", within)
        object.__setattr__(self, "size", offset)

    @classmethod
    def for_shape(cls, layers: int, label_width: int = 0) -> StateLayout:
        return cls(Shape(int(layers), int(label_width)))

    # ------------------------------------------------------------ lookups

    def span(self, name: str) -> slice:
        """The slice of a block or field in the state."""
        return self.spans[name]

    def index(self, name: str) -> int:
        """The position of a scalar field in the state."""
        f = self._field(name)
        if not f.scalar:
            raise ValueError(f"state field {name!r} is not a scalar")
        return int(self.spans[name].start)

    def width(self, name: str) -> int:
        s = self.spans[name]
        return int(s.stop - s.start)

    def block(self, name: str) -> Block:
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(name)

    def _field(self, name: str) -> Field:
        for block in self.blocks:
            for f in block.fields:
                if f.name == name:
                    return f
        raise KeyError(name)

    # ---------------------------------------------------------- graph side

    def pack(self, tf: Any, block: str, *pieces: tuple[Any, Any]) -> Any:
        """A block's new value from `(field names, tensor)` pieces, in declaration order.

        Checked at trace time (names in order, static widths); the result is
        the piece itself or one `concat` of the pieces, so naming adds no op.
        Fields of width 0 (no label block) may be left out.
        """
        declared = [f.name for f in self.block(block).fields]
        named: list[str] = []
        tensors = []
        for names, tensor in pieces:
            names = (names,) if isinstance(names, str) else tuple(names)
            width = sum(self.width(n) for n in names)
            static = tensor.shape[0] if tensor.shape.rank == 1 else None
            if static is not None and int(static) != width:
                raise ValueError(f"state fields {names}: {int(static)} values for width {width}")
            named.extend(names)
            tensors.append(tensor)
        expected = [n for n in declared if n in named or self.width(n) > 0]
        if named != expected:
            raise ValueError(f"block {block!r} packs {named}, declared {expected}")
        return tensors[0] if len(tensors) == 1 else tf.concat(tensors, 0)

    # ----------------------------------------------------------- host side

    def view(self, block: str, values: np.ndarray) -> BlockView:
        """Named fields of one block's values."""
        return BlockView(values, self.within[block])

    def zeros(self, block: str) -> BlockView:
        return self.view(block, np.zeros(self.width(block)))

    def combine(self, block: str, states: Sequence[np.ndarray]) -> BlockView:
        """One block over this process's copies, by the block's combine policy."""
        span = self.spans[block]
        policy = self.block(block).combine
        if policy == SUM:
            values = np.sum([s[span] for s in states], axis=0)
        elif policy == MAX:
            values = np.max([s[span] for s in states], axis=0)
        elif policy == FIRST:
            values = np.array(states[0][span])
        else:
            raise ValueError(f"block {block!r} is read per replica, not combined")
        return self.view(block, values)

    def initial(self) -> np.ndarray:
        state = np.zeros(self.size)
        for block in self.blocks:
            for f in block.fields:
                if f.initial != 0.0:
                    state[self.spans[f.name]] = f.initial
        return state

    def reset_epoch(self, state: np.ndarray) -> np.ndarray:
        state = np.array(state, np.float64)
        for block in self.blocks:
            for f in block.fields:
                if f.reset == EPOCH:
                    state[self.spans[f.name]] = f.initial
        return state
