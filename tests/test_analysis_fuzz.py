"""Fuzz: analyze_run never raises and keeps its schema for arbitrary run data."""

from __future__ import annotations

import numpy as np
from analysis_helpers import card, check_schema
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tb_stagnation.analysis import stall
from tb_stagnation.analysis.baselines import Baselines
from tb_stagnation.analysis.report import analyze_run
from tb_stagnation.analysis.run_data import SOURCE_CALLBACK, SOURCE_KERAS, RunData
from tb_stagnation.summary import tags

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=-2.0, max_value=3.0),  # loss-like and share-like values, often
    st.sampled_from([0.0, 1.0, 0.6931, 1.0986, 1e-9, 1e10, float("nan"), float("inf")]),
)
SCALAR_TAGS = [
    tags.logs_tag("loss"),
    tags.logs_tag("accuracy"),
    tags.logs_tag("val_loss"),
    tags.LEARNING_RATE,
    tags.GRAD_GLOBAL_NORM,
    tags.GRAD_NONFINITE_FRACTION,
    tags.WEIGHT_GLOBAL_NORM,
    tags.UPDATE_GLOBAL_RATIO,
    tags.PRED_TOP_CLASS_SHARE,
    tags.PRED_CHANGED_SHARE,
    tags.INPUT_MEAN,
    tags.INPUT_STD,
    tags.INPUT_MAX_ABS,
    tags.BATCHES_DISTINCT,
    tags.BATCHES_SEEN,
    tags.LABEL_MEAN,
    tags.LABEL_VARIANCE,
]
LOSSES = [
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "categorical_crossentropy",
    "huber",
    None,
    7,
]
ACTIVATIONS = ["softmax", "sigmoid", "linear", "relu", "tanh", None]


@st.composite
def run_data(draw):
    n = draw(st.integers(min_value=0, max_value=24))
    layers = draw(st.integers(min_value=0, max_value=4))

    def series(length):
        return np.array(draw(st.lists(VALUES, min_size=length, max_size=length)), dtype=float)

    scalars = {}
    for tag in draw(st.lists(st.sampled_from(SCALAR_TAGS), unique=True, max_size=len(SCALAR_TAGS))):
        if draw(st.booleans()):
            scalars[tag] = np.full(n, draw(VALUES))  # constant series are common
        else:
            scalars[tag] = series(n)
    layer_stats = {}
    for tag in draw(st.lists(st.sampled_from(list(tags.LAYER_STATS)), unique=True, max_size=7)):
        layer_stats[tag] = series(n * layers).reshape(n, layers)
    counts = None
    if draw(st.booleans()):
        k = draw(st.integers(min_value=1, max_value=4))
        counts = series(n * k).reshape(n, k)
    model_card = draw(
        st.one_of(
            st.none(),
            st.just({}),
            st.builds(
                lambda loss, act, width: card(loss=loss, activation=act, width=width),
                st.sampled_from(LOSSES),
                st.sampled_from(ACTIVATIONS),
                st.integers(min_value=1, max_value=4),
            ),
            st.just({"layers": [None, 3, {"name": 5}], "optimizer": "sgd", "output_shape": [2]}),
        )
    )
    names = [f"layer_{i}" for i in range(layers)] if draw(st.booleans()) else []
    present = {}
    for tag in scalars:
        if draw(st.booleans()):
            present[tag] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    run = RunData(
        name=draw(st.text(max_size=12)),
        source=draw(st.sampled_from([SOURCE_CALLBACK, SOURCE_KERAS])),
        epochs=np.arange(n, dtype=np.int64) + draw(st.integers(min_value=0, max_value=5)),
        scalars=scalars,
        layer_names=names,
        layer_stats=layer_stats,
        class_counts=counts,
        model_card=model_card,
    )
    run.scalar_present = present  # the reader's "a value was logged here" masks
    return run


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_data())
def test_analyze_run_never_raises_and_keeps_the_schema(run):
    report = analyze_run(run)
    check_schema(report)
    assert report["epochs"] <= run.num_epochs
    assert set(report["stalled_epochs"]) <= {int(e) for e in run.epochs}


@settings(max_examples=150, deadline=None)
@given(st.lists(VALUES, min_size=0, max_size=40), st.lists(VALUES, min_size=0, max_size=40))
def test_loss_and_accuracy_curves_alone(loss, acc):
    n = len(loss)
    acc = (acc + [0.5] * n)[:n]
    for source in (SOURCE_CALLBACK, SOURCE_KERAS):
        run = RunData(
            name="fuzz",
            source=source,
            epochs=np.arange(n, dtype=np.int64),
            scalars={
                tags.logs_tag("loss"): np.array(loss),
                tags.logs_tag("accuracy"): np.array(acc),
            },
            class_counts=np.ones((n, 3)) if source == SOURCE_CALLBACK else None,
            model_card=card() if source == SOURCE_CALLBACK else None,
        )
        check_schema(analyze_run(run))


# Curves of plateaus and steps, what stall windows are made of: levels held
# for a few epochs, some of them at the constant-predictor loss.
PLATEAUS = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([2.3026, 0.6931, 1.0, 0.5, 0.1, 0.0999]), VALUES),
        st.integers(min_value=1, max_value=30),
    ),
    max_size=8,
).map(lambda steps: [level for level, count in steps for _ in range(count)])


@settings(max_examples=200, deadline=None)
@given(
    PLATEAUS,
    st.lists(st.sampled_from([0.1, 0.5, 0.52, 0.9, float("nan")]), max_size=120),
    st.sampled_from([None, 0.6931, 2.3026]),
    st.integers(min_value=1, max_value=40),
)
def test_stall_windows_do_not_depend_on_the_block_they_are_computed_in(
    loss, acc, constant_loss, cells
):
    """`stall.detect` compares windows of every length a block of start epochs
    at a time, to bound its memory on long runs. Blocks of a few starts must
    flag exactly what one block for the whole run flags: a window that
    crosses a block boundary is still one window."""
    n = len(loss)
    acc_curve = np.array((acc + [0.5] * n)[:n]) if acc else None
    assume(n > 2)
    base = Baselines(constant_loss=constant_loss, majority_rate=0.5, loss_kind="crossentropy")
    assert n * stall.MAX_LAG <= stall._WINDOW_CELLS  # one block: the whole run
    whole = stall.detect(np.array(loss), acc_curve, base)
    default = stall._WINDOW_CELLS
    stall._WINDOW_CELLS = cells  # blocks of 1 start and up
    try:
        blocks = stall.detect(np.array(loss), acc_curve, base)
    finally:
        stall._WINDOW_CELLS = default
    np.testing.assert_array_equal(blocks.flagged, whole.flagged)
    assert repr(blocks.windows) == repr(whole.windows)
