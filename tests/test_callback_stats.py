"""The callback's host-side arithmetic and model reading, without training."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tb_stagnation.callback import epoch_stats, model_info
from tb_stagnation.callback.graph_recorder import LabelPlan, Readout
from tb_stagnation.callback.state_fields import StateLayout
from tb_stagnation.summary import tags


def _readout(
    grad=None, data=None, maxima=None, replicas=1, layers=2, label_width=0, gradient_replicas=None
):
    layout = StateLayout.for_shape(layers, label_width)
    return Readout(
        grad=layout.zeros("grad") if grad is None else grad,
        data=layout.zeros("data") if data is None else data,
        maxima=layout.zeros("maxima") if maxima is None else maxima,
        replicas=replicas,
        gradient_replicas=replicas if gradient_replicas is None else gradient_replicas,
    )


def test_gradient_stats_average_finite_steps_and_count_nonfinite_entries():
    grad = StateLayout.for_shape(2).zeros("grad")
    grad["norm_sum"] = [3.0, 0.0, 5.0]  # layer 1 had only non-finite steps
    grad["finite_steps"] = [3.0, 0.0, 2.0]
    grad["nonfinite"] = [0.0, 10.0, 10.0]
    grad["entries"] = [300.0, 40.0, 340.0]
    grad["measured_steps"] = 6.0  # two replicas x three steps
    scalars, layers = epoch_stats.gradient_stats(_readout(grad=grad, replicas=2), 2)
    assert scalars[tags.GRAD_STEPS] == 3.0
    # All-reduced gradients: replica 0 alone measured six steps.
    all_reduced = _readout(grad=grad, replicas=2, gradient_replicas=1)
    assert epoch_stats.gradient_stats(all_reduced, 2)[0][tags.GRAD_STEPS] == 6.0
    assert scalars[tags.GRAD_STEPS] == 3.0
    assert scalars[tags.GRAD_GLOBAL_NORM] == 2.5
    assert scalars[tags.GRAD_NONFINITE_FRACTION] == pytest.approx(10 / 340)
    np.testing.assert_allclose(layers[tags.LAYER_GRAD_NORM], [1.0, np.nan])
    np.testing.assert_allclose(layers[tags.LAYER_NONFINITE_FRACTION], [0.0, 0.25])


def test_no_measured_step_writes_the_count_only():
    scalars, layers = epoch_stats.gradient_stats(_readout(), 2)
    assert scalars == {tags.GRAD_STEPS: 0.0}
    assert np.all(np.isnan(layers[tags.LAYER_GRAD_NORM]))


def test_weight_stats_per_layer_and_global():
    # Start [3, 0], [1], [2, 2]; end [3, 4], [1], [2, 2]: per variable |W|^2 and |update|^2.
    weight_squares, update_squares = [25.0, 1.0, 8.0], [16.0, 0.0, 0.0]
    # Layer 0 owns variables 0 and 1; layer 1 (frozen, not global) owns variable 2.
    scalars, layers = epoch_stats.weight_stats(
        weight_squares, update_squares, [0, 0, 1], [True, True, False], 3
    )
    assert scalars[tags.WEIGHT_GLOBAL_NORM] == pytest.approx(math.sqrt(26))
    assert scalars[tags.UPDATE_GLOBAL_NORM] == pytest.approx(4.0)
    assert scalars[tags.UPDATE_GLOBAL_RATIO] == pytest.approx(4 / math.sqrt(26))
    np.testing.assert_allclose(layers[tags.LAYER_UPDATE_RATIO], [4 / math.sqrt(26), 0.0, np.nan])
    np.testing.assert_allclose(
        layers[tags.LAYER_WEIGHT_NORM], [math.sqrt(26), math.sqrt(8), np.nan]
    )


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        hnp.arrays(
            np.float32,
            st.tuples(st.integers(1, 6), st.integers(1, 4)),
            elements=st.floats(-1e3, 1e3, width=32),
        ),
        min_size=1,
        max_size=6,
    ),
    offset=st.floats(-1e4, 1e4),
)
def test_input_statistics_combine_batches_like_numpy(batches, offset):
    # What record_data adds per (measured) batch, in float32 as on the device.
    layout = StateLayout.for_shape(2)
    data = layout.zeros("data")
    for batch in batches:
        values = (batch + np.float32(offset)).astype(np.float32)
        size = values.size
        total = np.float32(values.sum(dtype=np.float32))
        m2 = np.square(values - total / size, dtype=np.float32).sum(dtype=np.float32)
        data["batches"] += 1
        data["input_sum"] += float(total)
        data["input_count"] += size
        data["spread_sum"] += float(total)
        data["spread_m2"] += float(m2)
        data["spread_q"] += float(total) ** 2 / size
        data["spread_count"] += size
    everything = np.concatenate(
        [(b + np.float32(offset)).astype(np.float32).ravel() for b in batches]
    )
    maxima = layout.view("maxima", np.array([1.0, 1.0]))
    readout = _readout(data=data, maxima=maxima)
    scalars, _ = epoch_stats.data_stats(readout, None)
    expected_mean = everything.mean(dtype=np.float64)
    assert scalars[tags.INPUT_MEAN] == pytest.approx(expected_mean, rel=1e-5, abs=1e-2)
    scale = max(1.0, abs(offset), float(np.abs(everything).max()))
    expected_std = everything.std(dtype=np.float64)
    assert scalars[tags.INPUT_STD] == pytest.approx(expected_std, abs=1e-3 * scale)
    assert scalars[tags.BATCHES_SEEN] == len(batches)


def test_input_spread_is_absent_without_a_measured_step():
    data = StateLayout.for_shape(2).zeros("data")
    data["batches"], data["input_sum"], data["input_count"] = 2, 10.0, 5
    scalars, _ = epoch_stats.data_stats(_readout(data=data), None)
    assert scalars[tags.INPUT_MEAN] == 2.0
    assert tags.INPUT_STD not in scalars and tags.INPUT_MAX_ABS not in scalars


def test_regression_label_baseline_is_the_mean_per_dimension_variance():
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(n, 2)) * [1.0, 10.0] + [5.0, -3.0] for n in (4, 7, 3)]
    dims = 2
    block = np.zeros(1 + 3 * dims)
    for rows in batches:
        sums = rows.sum(0)
        block[0] += len(rows)
        block[1 : 1 + dims] += np.square(rows - sums / len(rows)).sum(0)
        block[1 + dims : 1 + 2 * dims] += np.square(sums) / len(rows)
        block[1 + 2 * dims :] += sums
    everything = np.concatenate(batches)
    stats = epoch_stats.regression_label_stats(block, dims)
    assert stats[tags.LABEL_MEAN] == pytest.approx(everything.mean())
    assert stats[tags.LABEL_VARIANCE] == pytest.approx(everything.var(axis=0).mean())


def test_class_counts_come_from_the_label_block():
    plan = LabelPlan(0, ("out",), model_info.TASK_CLASSIFICATION, 3, True, 1)
    data = StateLayout.for_shape(2, label_width=3).zeros("data")
    data["labels"] = [4, 0, 2]
    _, counts = epoch_stats.data_stats(_readout(data=data, label_width=3), plan)
    np.testing.assert_array_equal(counts, [4, 0, 2])


def test_state_layout_is_computed_from_the_declarations():
    layout = StateLayout.for_shape(2, label_width=3)
    # Blocks in declaration order, fields in order within them.
    assert [layout.span(b) for b in ("data", "grad", "counters", "maxima", "batch")] == [
        slice(0, 11),
        slice(11, 24),
        slice(24, 27),
        slice(27, 29),
        slice(29, 32),
    ]
    assert layout.size == 32
    assert layout.index("spread_count") == 7 and layout.span("labels") == slice(8, 11)
    assert layout.span("norm_sum") == slice(11, 14) and layout.index("measured_steps") == 23
    assert [layout.index(n) for n in ("step", "ring_count", "probe_count")] == [24, 25, 26]
    assert layout.index("last_grad_step") == 31
    with pytest.raises(ValueError, match="not a scalar"):
        layout.index("entries")
    assert StateLayout.for_shape(0).span("data") == slice(0, 8)  # no label block


def test_state_initial_values_and_epoch_reset_follow_the_declared_policies():
    layout = StateLayout.for_shape(1)
    initial = layout.initial()
    np.testing.assert_array_equal(initial[layout.span("batch")], [np.nan, np.nan, -1.0])
    assert not np.any(initial[: layout.span("batch").start])
    state = np.arange(layout.size, dtype=np.float64) + 1.0
    reset = layout.reset_epoch(state)
    kept = [layout.index("probe_count")] + list(range(layout.size)[layout.span("batch")])
    for position in range(layout.size):
        assert reset[position] == (state[position] if position in kept else 0.0)
    assert state[0] == 1.0  # the input is not modified


def test_block_views_read_fields_by_name_and_combine_replicas_by_policy():
    layout = StateLayout.for_shape(1)
    first, second = layout.initial(), layout.initial()
    first[layout.span("grad")] = np.arange(layout.width("grad"))
    second[layout.span("grad")] = 10.0
    first[layout.span("maxima")] = [3.0, 32.0]
    second[layout.span("maxima")] = [5.0, 16.0]
    first[layout.index("last_loss")] = 0.5
    grad = layout.combine("grad", [first, second])
    np.testing.assert_array_equal(grad.norm_sum, [10.0, 11.0])
    assert grad.measured_steps == 18.0 and np.ndim(grad.measured_steps) == 0
    maxima = layout.combine("maxima", [first, second])
    assert (maxima.max_abs, maxima.largest_batch) == (5.0, 32.0)
    assert layout.combine("batch", [first, second]).last_loss == 0.5
    with pytest.raises(ValueError, match="per replica"):
        layout.combine("counters", [first, second])
    with pytest.raises(AttributeError):
        _ = grad.batches  # a field of another block


def test_every_block_names_a_decoder_that_exists():
    from tb_stagnation.callback import graph_recorder, state_fields

    modules = {"epoch_stats": epoch_stats, "GraphRecorder": graph_recorder.GraphRecorder}
    for block in state_fields.BLOCKS:
        owner, name = block.decoded_by.split(".")
        assert callable(getattr(modules[owner], name)), block.decoded_by


def test_pack_checks_names_and_widths_at_trace_time_without_an_op_of_its_own():
    import tensorflow as tf

    layout = StateLayout.for_shape(1)
    maxima = tf.constant([1.0, 2.0], tf.float64)
    assert layout.pack(tf, "maxima", (("max_abs", "largest_batch"), maxima)) is maxima
    with pytest.raises(ValueError, match="declared"):
        layout.pack(tf, "maxima", (("largest_batch", "max_abs"), maxima))
    with pytest.raises(ValueError, match="width"):
        layout.pack(tf, "maxima", (("max_abs", "largest_batch"), tf.zeros([3], tf.float64)))
    # The label field has width 0 here and may be left out.
    head = tf.zeros([4], tf.float64)
    names = ("batches", "samples", "input_sum", "input_count")
    spread = ("spread_sum", "spread_m2", "spread_q", "spread_count")
    assert layout.pack(tf, "data", (names, head), (spread, head)).shape == (8,)


def test_distinct_batches_per_replica_and_rounding():
    counter = epoch_stats.DistinctBatches(replicas=2)
    same = np.array([[1.0, 2.0, 3.0]])
    counter.add([np.repeat(same, 5, axis=0), np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])])
    # A last-bit difference from another reduction order is the same batch.
    counter.add([same * (1 + 1e-15), np.zeros((0, 3))])
    assert counter.count() == 2
    counter.reset()
    assert counter.count() == 0


def test_prediction_statistics():
    probabilities = np.array(
        [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1.0]]
    )
    scalars, classes = epoch_stats.prediction_stats(probabilities, None)
    assert scalars[tags.PRED_ENTROPY] == pytest.approx(0.25)
    assert scalars[tags.PRED_TOP_CLASS_SHARE] == 0.75
    share = np.array([0.75, 0.25])
    assert scalars[tags.PRED_CLASS_ENTROPY] == pytest.approx(
        -(share * np.log(share)).sum() / np.log(3)
    )
    assert tags.PRED_CHANGED_SHARE not in scalars
    scalars, _ = epoch_stats.prediction_stats(probabilities[::-1], classes)
    assert scalars[tags.PRED_CHANGED_SHARE] == 0.5

    collapsed = np.tile([0.2, 0.8], (10, 1))
    scalars, _ = epoch_stats.prediction_stats(collapsed, None)
    assert scalars[tags.PRED_CLASS_ENTROPY] == 0.0 and scalars[tags.PRED_TOP_CLASS_SHARE] == 1.0


def test_class_probabilities_follow_keras_crossentropy():
    logits = np.array([[2.0, 0.0], [0.0, 0.0]])
    p = epoch_stats.class_probabilities(logits, model_info.TASK_CLASSIFICATION, "linear", True)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert p[1, 0] == pytest.approx(0.5)
    # Unnormalised non-logits are normalised as the loss does.
    p = epoch_stats.class_probabilities(
        np.array([[2.0, 2.0]]), model_info.TASK_CLASSIFICATION, "relu", False
    )
    np.testing.assert_allclose(p, [[0.5, 0.5]])
    p = epoch_stats.class_probabilities(
        np.array([[0.0], [3.0]]), model_info.TASK_BINARY, None, True
    )
    np.testing.assert_allclose(p[:, 1], [0.5, 1 / (1 + math.exp(-3))])
    assert (
        epoch_stats.class_probabilities(np.zeros((2, 1)), model_info.TASK_REGRESSION, None, False)
        is None
    )


def test_unit_fractions():
    dead, saturated = epoch_stats.unit_fractions(np.array([0.0, -1.0, 2.0, 0.5]), None)
    assert dead == 0.5 and math.isnan(saturated)
    dead, saturated = epoch_stats.unit_fractions(None, np.array([0.9, 0.5, 0.1]))
    assert math.isnan(dead) and saturated == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("activation", "loss", "width", "expected"),
    [
        ("softmax", "sparse_categorical_crossentropy", 10, ("classification", 10, True)),
        ("softmax", "categorical_crossentropy", 10, ("classification", 10, False)),
        ("linear", "categorical_focal_crossentropy", 4, ("classification", 4, False)),
        ("sigmoid", "binary_crossentropy", 1, ("binary", 2, None)),
        ("linear", "binary_crossentropy", 1, ("binary", 2, None)),
        ("softmax", "mean_squared_error", 3, ("classification", 3, None)),
        ("linear", "mean_squared_error", 1, ("regression", None, None)),
        ("relu", "huber", 2, ("regression", None, None)),
        (None, "my_custom_loss", 3, ("unknown", None, None)),
        ("softmax", "sparse_categorical_crossentropy", 1, ("classification", 1, True)),
    ],
)
def test_infer_task(activation, loss, width, expected):
    assert model_info.infer_task(activation, loss, width) == expected


def test_loss_names_and_logits():
    assert model_info.loss_name_and_logits("mse") == ("mean_squared_error", False)
    assert model_info.loss_name_and_logits(
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ) == ("sparse_categorical_crossentropy", True)
    assert model_info.loss_name_and_logits(keras.losses.binary_crossentropy) == (
        "binary_crossentropy",
        False,
    )

    def my_loss(y_true, y_pred):
        return y_pred

    assert model_info.loss_name_and_logits(my_loss) == ("my_loss", False)
    assert model_info.loss_name_and_logits(None) == (None, False)


def test_weight_layers_flatten_nested_models_in_order():
    inner = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="a"),
            keras.layers.BatchNormalization(name="bn"),
        ],
        name="inner",
    )
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(4, activation="tanh", name="first")(inputs)
    outputs = keras.layers.Dense(1, name="last")(inner(hidden))
    model = keras.Model(inputs, outputs)
    model.get_layer("first").trainable = False
    layers = model_info.weight_layers(model)
    assert [layer.name for layer in layers] == ["first", "a", "bn", "last"]
    first, _, bn, _ = layers
    assert first.activation == "tanh" and not first.trainable and first.trainable_params == 0
    assert len(first.variables) == 2  # a frozen layer's kernel is still followed
    assert bn.params == 12 and bn.trainable_params == 6
    assert len(bn.variables) == 2  # gamma and beta, not the moving statistics
