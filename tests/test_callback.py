"""StagnationCallback inside real `fit` calls: what it writes, and that it is right.

Tiny models, a few epochs, synthetic numpy data; read back through
TensorBoard's data provider (`callback_support.read_run`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from callback_support import read_run

from tb_stagnation import StagnationCallback
from tb_stagnation.callback.hooks import is_instrumented
from tb_stagnation.summary import tags

EPOCHS = 3


def _classification_data(n: int = 192, features: int = 6, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (np.argmax(x[:, :classes], axis=1)).astype("int64")
    return x, y


def _sequential(features: int = 6, classes: int = 3) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(classes, activation="softmax", name="head"),
        ]
    )


@pytest.mark.parametrize("jit_compile", [True, False])
def test_sequential_classifier_writes_every_tag_with_sane_values(tmp_path, jit_compile):
    keras.utils.set_random_seed(0)
    x, y = _classification_data()
    model = _sequential()
    model.compile(
        "adam", "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile
    )
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=EPOCHS,
        validation_data=(x[:64], y[:64]),
        verbose=0,
        callbacks=[StagnationCallback(log_dir=str(tmp_path), gradient_freq=1)],
    )
    run = read_run(tmp_path)
    steps = list(range(EPOCHS))

    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(run.series(tags.logs_tag(key)), history.history[key], rtol=1e-6)
    for tag in (
        tags.LEARNING_RATE,
        tags.GRAD_GLOBAL_NORM,
        tags.GRAD_NONFINITE_FRACTION,
        tags.GRAD_STEPS,
        tags.WEIGHT_GLOBAL_NORM,
        tags.UPDATE_GLOBAL_NORM,
        tags.UPDATE_GLOBAL_RATIO,
        tags.PRED_ENTROPY,
        tags.PRED_CLASS_ENTROPY,
        tags.PRED_TOP_CLASS_SHARE,
        tags.INPUT_MEAN,
        tags.INPUT_STD,
        tags.INPUT_MAX_ABS,
        tags.BATCHES_DISTINCT,
        tags.BATCHES_SEEN,
    ):
        assert sorted(run.scalar(tag)) == steps, tag
    # Changed share compares with the previous epoch: none at the first.
    assert sorted(run.scalar(tags.PRED_CHANGED_SHARE)) == steps[1:]
    assert not run.scalar(tags.LABEL_MEAN)  # classification: no regression statistics

    np.testing.assert_allclose(run.series(tags.LEARNING_RATE), 0.001, rtol=1e-6)
    assert all(v > 0 for v in run.series(tags.GRAD_GLOBAL_NORM))
    assert run.series(tags.GRAD_NONFINITE_FRACTION) == [0.0] * EPOCHS
    assert run.series(tags.GRAD_STEPS) == [6.0] * EPOCHS
    assert run.series(tags.BATCHES_SEEN) == [6.0] * EPOCHS
    assert run.series(tags.BATCHES_DISTINCT) == [6.0] * EPOCHS
    ratios = run.series(tags.UPDATE_GLOBAL_RATIO)
    assert all(0 < r < 1 for r in ratios)
    for tag in (tags.PRED_ENTROPY, tags.PRED_CLASS_ENTROPY, tags.PRED_TOP_CLASS_SHARE):
        assert all(0 <= v <= 1 for v in run.series(tag)), tag
    assert all(0 <= v <= 1 for v in run.series(tags.PRED_CHANGED_SHARE))

    # Inputs: every sample once per epoch.
    np.testing.assert_allclose(run.series(tags.INPUT_MEAN), x.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(run.series(tags.INPUT_STD), x.std(), rtol=1e-4)
    np.testing.assert_allclose(run.series(tags.INPUT_MAX_ABS), np.abs(x).max(), rtol=1e-6)

    for step in steps:
        np.testing.assert_array_equal(
            run.tensors[tags.LABEL_CLASS_COUNTS][step], np.bincount(y, minlength=3)
        )
        for tag in tags.LAYER_STATS:
            assert run.layer(tag, step).shape == (2,), tag
        grad = run.layer(tags.LAYER_GRAD_NORM, step)
        assert np.all(grad > 0)
        # The global norm of each step is at least the largest layer's norm.
        assert run.scalar(tags.GRAD_GLOBAL_NORM)[step] >= grad.max() * (1 - 1e-5)
        ratio = run.layer(tags.LAYER_UPDATE_RATIO, step)
        np.testing.assert_allclose(
            ratio,
            run.layer(tags.LAYER_UPDATE_NORM, step) / run.layer(tags.LAYER_WEIGHT_NORM, step),
            rtol=1e-5,
        )
        dead = run.layer(tags.LAYER_DEAD_FRACTION, step)
        assert 0 <= dead[0] <= 1 and math.isnan(dead[1])  # relu hidden, softmax head
        assert np.all(np.isnan(run.layer(tags.LAYER_SATURATED_FRACTION, step)))

    # The weight norm at the last epoch end is the model's.
    final = math.sqrt(sum(float(np.sum(np.square(w.numpy()))) for w in model.trainable_weights))
    assert run.scalar(tags.WEIGHT_GLOBAL_NORM)[EPOCHS - 1] == pytest.approx(final, rel=1e-5)

    card = run.card()
    assert card["model_class"] == "Sequential"
    assert card["loss"] == "sparse_categorical_crossentropy"
    assert card["optimizer"]["class"] == "Adam"
    assert card["optimizer"]["learning_rate"] == pytest.approx(0.001)
    assert card["task"] == "classification" and card["num_classes"] == 3
    assert card["output_shape"] == [None, 3] and card["output_activation"] == "softmax"
    assert [layer["name"] for layer in card["layers"]] == ["hidden", "head"]
    assert card["layers"][0] == {
        "name": "hidden",
        "type": "Dense",
        "activation": "relu",
        "trainable": True,
        "params": 56,
        "trainable_params": 56,
    }
    assert card["trainable_params"] == model.count_params()
    assert card["steps_per_epoch"] == 6 and card["batch_size"] == 32
    assert card["update_freq"] == "epoch"
    assert card["gradient_freq"] == 1 and card["probe_size"] == 256

    # The model is left as it was found.
    assert "_compute_loss" not in vars(model)
    assert "apply" not in vars(model.optimizer)
    assert not is_instrumented(model.train_function)


def test_functional_model_with_two_outputs_reports_its_classification_output(tmp_path):
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 5)).astype("float32")
    y_class = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")  # 0, 1, 2
    y_value = x[:, 2:4] * 3.0 + 1.0
    inputs = keras.Input((5,), name="features")
    hidden = keras.layers.Dense(8, activation="tanh", name="trunk")(inputs)
    value = keras.layers.Dense(2, name="value")(hidden)
    label = keras.layers.Dense(3, activation="softmax", name="label")(hidden)
    model = keras.Model(inputs, {"value": value, "label": label})
    model.compile(
        "sgd",
        loss={"value": "mse", "label": "sparse_categorical_crossentropy"},
    )
    model.fit(
        x,
        {"value": y_value, "label": y_class},
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(log_dir=str(tmp_path))],
    )
    run = read_run(tmp_path)
    card = run.card()
    outputs = {o["name"]: o for o in card["outputs"]}
    assert (
        outputs["value"]["task"] == "regression"
        and outputs["value"]["loss"] == "mean_squared_error"
    )
    assert outputs["label"]["task"] == "classification" and outputs["label"]["num_classes"] == 3
    assert card["stats_output"] == "label"
    assert card["task"] == "classification"
    names = [layer["name"] for layer in card["layers"]]
    assert names[0] == "trunk" and sorted(names[1:]) == ["label", "value"]
    np.testing.assert_array_equal(
        run.tensors[tags.LABEL_CLASS_COUNTS][1], np.bincount(y_class, minlength=3)
    )
    assert sorted(run.scalar(tags.PRED_ENTROPY)) == [0, 1]
    assert tags.logs_tag("label_loss") in run.scalars
    sat = run.layer(tags.LAYER_SATURATED_FRACTION, 1)
    assert sat[0] == 0.0 and np.all(np.isnan(sat[1:]))


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(4)

    def call(self, inputs, training=False):
        return self.out(self.hidden(inputs))


def test_subclassed_model_with_logits(tmp_path):
    keras.utils.set_random_seed(2)
    x, y = _classification_data(n=96, features=6, classes=4, seed=2)
    model = SubclassedNet()
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(
        x, y, batch_size=32, epochs=2, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
    )
    run = read_run(tmp_path)
    card = run.card()
    assert card["model_class"] == "SubclassedNet"
    assert card["task"] == "classification" and card["num_classes"] == 4
    assert card["outputs"][0]["from_logits"] is True
    assert [layer["type"] for layer in card["layers"]] == ["Dense", "Dense"]
    assert all(v > 0 for v in run.series(tags.GRAD_GLOBAL_NORM))
    # Logits go through softmax: a proper normalised entropy.
    assert all(0 < v <= 1 for v in run.series(tags.PRED_ENTROPY))
    # No layer graph to tap in a subclassed model.
    assert np.all(np.isnan(run.layer(tags.LAYER_DEAD_FRACTION, 1)))
    np.testing.assert_array_equal(
        run.tensors[tags.LABEL_CLASS_COUNTS][0], np.bincount(y, minlength=4)
    )


def test_regression_model_gets_label_baseline_and_no_class_statistics(tmp_path):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(160, 4)).astype("float32") * 10 + 50
    y = np.stack([x[:, 0] * 0.5, x[:, 1] - x[:, 2]], axis=1).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(1e-5), "mae")
    # gradient_freq=1: the input spread of every batch, to compare with numpy.
    callback = StagnationCallback(str(tmp_path), gradient_freq=1)
    model.fit(x, y, batch_size=40, epochs=2, verbose=0, callbacks=[callback])
    run = read_run(tmp_path)
    card = run.card()
    assert card["task"] == "regression" and card["num_classes"] is None
    assert card["loss"] == "mean_absolute_error"
    np.testing.assert_allclose(run.series(tags.LABEL_MEAN), y.mean(), rtol=1e-5)
    # Best constant per target dimension: the mean of the per-dimension variances.
    np.testing.assert_allclose(run.series(tags.LABEL_VARIANCE), y.var(axis=0).mean(), rtol=1e-4)
    np.testing.assert_allclose(run.series(tags.INPUT_MEAN), x.mean(), rtol=1e-5)
    np.testing.assert_allclose(run.series(tags.INPUT_STD), x.std(), rtol=1e-4)
    for tag in (tags.PRED_ENTROPY, tags.PRED_CLASS_ENTROPY, tags.PRED_TOP_CLASS_SHARE):
        assert not run.scalar(tag)
    assert tags.LABEL_CLASS_COUNTS not in run.tensors
    assert all(v > 0 for v in run.series(tags.GRAD_GLOBAL_NORM))


def test_binary_sigmoid_counts_two_classes(tmp_path):
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 3)).astype("float32")
    y = (x[:, 0] > 0.5).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, activation="tanh"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(
        x, y, batch_size=25, epochs=2, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
    )
    run = read_run(tmp_path)
    assert run.card()["task"] == "binary" and run.card()["num_classes"] == 2
    positives = float(y.sum())
    np.testing.assert_array_equal(
        run.tensors[tags.LABEL_CLASS_COUNTS][0], [100 - positives, positives]
    )
    assert all(0 <= v <= 1 for v in run.series(tags.PRED_ENTROPY))
    assert run.series(tags.BATCHES_SEEN) == [4.0, 4.0]


def test_one_hot_labels_are_counted_per_class(tmp_path):
    keras.utils.set_random_seed(5)
    x, y = _classification_data(n=90, classes=3, seed=5)
    one_hot = keras.utils.to_categorical(y, 3)
    model = _sequential()
    model.compile("sgd", "categorical_crossentropy")
    model.fit(
        x,
        one_hot,
        batch_size=30,
        epochs=1,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path))],
    )
    run = read_run(tmp_path)
    np.testing.assert_array_equal(
        run.tensors[tags.LABEL_CLASS_COUNTS][0], np.bincount(y, minlength=3)
    )


def test_frozen_layer_and_zero_learning_rate_show_no_update(tmp_path):
    keras.utils.set_random_seed(6)
    x, y = _classification_data(seed=6)
    model = _sequential()
    model.layers[0].trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        x,
        y,
        batch_size=64,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "frozen"))],
    )
    run = read_run(tmp_path / "frozen")
    card = run.card()
    assert card["layers"][0]["trainable"] is False and card["layers"][0]["trainable_params"] == 0
    for step in (0, 1):
        assert run.layer(tags.LAYER_UPDATE_RATIO, step)[0] == 0.0
        assert run.layer(tags.LAYER_UPDATE_RATIO, step)[1] > 0
        assert run.layer(tags.LAYER_WEIGHT_NORM, step)[0] > 0
        grad = run.layer(tags.LAYER_GRAD_NORM, step)
        assert np.isnan(grad[0]) and grad[1] > 0  # no gradient reaches a frozen layer

    model = _sequential()
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "sparse_categorical_crossentropy")
    model.fit(
        x,
        y,
        batch_size=64,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "lr0"))],
    )
    run = read_run(tmp_path / "lr0")
    assert run.series(tags.UPDATE_GLOBAL_RATIO) == [0.0, 0.0]
    assert run.series(tags.LEARNING_RATE) == [0.0, 0.0]
    assert all(v > 0 for v in run.series(tags.GRAD_GLOBAL_NORM))


def test_dead_relu_and_saturated_tanh_layers(tmp_path):
    keras.utils.set_random_seed(7)
    x, y = _classification_data(seed=7)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, kernel_initializer=keras.initializers.RandomNormal(stddev=30.0)),
            keras.layers.Activation("tanh"),
            keras.layers.Dense(
                16, activation="relu", bias_initializer=keras.initializers.Constant(-100.0)
            ),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(
        x, y, batch_size=64, epochs=1, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
    )
    run = read_run(tmp_path)
    dead = run.layer(tags.LAYER_DEAD_FRACTION, 0)
    saturated = run.layer(tags.LAYER_SATURATED_FRACTION, 0)
    # The linear Dense is measured after the tanh Activation layer that follows it.
    assert run.card()["layers"][0]["activation"] == "linear"
    assert saturated[0] > 0.9 and np.isnan(dead[0])
    assert dead[1] == 1.0 and np.isnan(saturated[1])  # bias -100: never fires
    assert np.isnan(dead[2]) and np.isnan(saturated[2])
    # Nothing flows back through a dead layer.
    grads = run.layer(tags.LAYER_GRAD_NORM, 0)
    assert grads[0] == 0.0 and grads[1] == 0.0 and grads[2] > 0


def test_a_pipeline_repeating_one_batch_has_one_distinct_batch(tmp_path):
    keras.utils.set_random_seed(8)
    x, y = _classification_data(n=32, seed=8)
    repeated = tf.data.Dataset.from_tensors((x, y)).repeat()
    model = _sequential()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        repeated,
        steps_per_epoch=5,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "one"))],
    )
    run = read_run(tmp_path / "one")
    assert run.series(tags.BATCHES_DISTINCT) == [1.0, 1.0]
    assert run.series(tags.BATCHES_SEEN) == [5.0, 5.0]
    assert run.card()["steps_per_epoch"] == 5

    # The same infinite pipeline over different batches counts each one.
    x, y = _classification_data(n=160, seed=9)
    varied = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
    model.fit(
        varied,
        steps_per_epoch=5,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "many"))],
    )
    run = read_run(tmp_path / "many")
    assert run.series(tags.BATCHES_DISTINCT) == [5.0, 5.0]


def test_coexists_with_keras_tensorboard_on_one_log_dir(tmp_path):
    keras.utils.set_random_seed(10)
    x, y = _classification_data(n=64, seed=10)
    model = _sequential()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        validation_data=(x, y),
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(log_dir=str(tmp_path), histogram_freq=1),
            StagnationCallback(log_dir=str(tmp_path)),
        ],
    )
    run = read_run(tmp_path)
    assert set(run.runs) >= {"stagnation", "train", "validation"}
    assert sorted(run.scalar(tags.logs_tag("loss"))) == [0, 1]
    multiplexer_keras = read_run(tmp_path, run="train")
    assert not multiplexer_keras.scalars  # Keras's run holds no data of our plugin
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    accumulator.Reload()
    assert "epoch_loss" in accumulator.Tags()["tensors"]


def test_update_freq_writes_batch_values_at_global_batch_indices(tmp_path):
    keras.utils.set_random_seed(11)
    x, y = _classification_data(n=160, seed=11)
    model = _sequential()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path), update_freq=2, gradient_freq=1)],
    )
    run = read_run(tmp_path)
    # 5 batches per epoch, global indices 0..9: written after every 2nd batch.
    assert sorted(run.scalar(tags.BATCH_LOSS)) == [1, 3, 5, 7, 9]
    assert sorted(run.scalar(tags.BATCH_GRAD_GLOBAL_NORM)) == [1, 3, 5, 7, 9]
    assert all(v > 0 for v in run.series(tags.BATCH_LOSS))
    assert all(v > 0 for v in run.series(tags.BATCH_GRAD_GLOBAL_NORM))
    assert run.card()["update_freq"] == 2


def test_learning_rate_schedule_is_evaluated_at_each_epoch_end(tmp_path):
    keras.utils.set_random_seed(12)
    x, y = _classification_data(n=64, seed=12)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model = _sequential()
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    model.fit(
        x, y, batch_size=32, epochs=2, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
    )
    run = read_run(tmp_path)
    # Two steps per epoch: lr(2) and lr(4).
    np.testing.assert_allclose(
        run.series(tags.LEARNING_RATE), [0.1 * 0.5**2, 0.1 * 0.5**4], rtol=1e-5
    )
    assert run.card()["optimizer"]["learning_rate_schedule"] == "ExponentialDecay"


def test_gradient_freq_measures_a_subset_of_steps(tmp_path):
    keras.utils.set_random_seed(13)
    x, y = _classification_data(n=224, seed=13)
    model = _sequential()
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=2)
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path), gradient_freq=3)],
    )
    run = read_run(tmp_path)
    # 7 steps per epoch, measured at steps 0, 3 and 6 of each.
    assert run.series(tags.GRAD_STEPS) == [3.0, 3.0]
    assert run.series(tags.BATCHES_SEEN) == [7.0, 7.0]
    assert all(v > 0 for v in run.series(tags.GRAD_GLOBAL_NORM))


def _ops_of_record_gradients(monkeypatch) -> list:
    """Filled during a fit: per traced `record_gradients` call, the ops it added to the step."""
    from tb_stagnation.callback.graph_recorder import GraphRecorder

    built: list = []
    original = GraphRecorder.record_gradients

    def traced(self, grads, variables):
        graph = tf.compat.v1.get_default_graph()
        first = len(graph.get_operations())
        released = original(self, grads, variables)
        built.append(graph.get_operations()[first:])
        return released

    monkeypatch.setattr(GraphRecorder, "record_gradients", traced)
    return built


def _lowering_marks(ops: list) -> list:
    """`_lower_using_switch_merge` of each cond op among `ops` (None: unset)."""
    marks = []
    for op in ops:
        if op.type in ("If", "StatelessIf"):
            try:
                marks.append(op.get_attr("_lower_using_switch_merge"))
            except ValueError:
                marks.append(None)
    return marks


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_skipped_gradient_pass_is_one_unlowered_if_where_that_is_safe(
    tmp_path, monkeypatch, steps_per_execution
):
    # The gradient pass's cond as traced into the real train step.
    built = _ops_of_record_gradients(monkeypatch)
    x, y = _classification_data(n=128)
    model = _sequential()
    model.compile(
        "adam", "sparse_categorical_crossentropy", steps_per_execution=steps_per_execution
    )
    model.fit(
        x, y, batch_size=32, epochs=1, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
    )
    # Keras before 3.7 can fail a multi-step call midway, which would cancel
    # an unlowered branch (compat_keras.conds_may_stay_unlowered).
    version = tuple(int(part) for part in keras.__version__.split(".")[:2])
    unlowered = steps_per_execution == 1 or version >= (3, 7)
    marks = [mark for ops in built for mark in _lowering_marks(ops)]
    assert marks
    if unlowered:
        assert set(marks) == {False}
    else:
        # TensorFlow's default: unset, or True (2.16 sets it on every cond).
        assert False not in marks


def _ancestors(tensors) -> set:
    """Every op that `tensors` depend on, through data and control inputs."""
    seen: set = set()
    pending = [t.op for t in tensors]
    while pending:
        op = pending.pop()
        if op in seen:
            continue
        seen.add(op)
        pending.extend(t.op for t in op.inputs)
        pending.extend(op.control_inputs)
    return seen


@pytest.mark.parametrize("gradient_freq", [8, 1])
def test_optimizer_reads_the_large_gradients_after_the_gradient_pass(
    tmp_path, monkeypatch, gradient_freq
):
    # Were the optimizer free to update while the gradient pass still held a
    # large gradient, it could not reuse its buffer: the step's peak memory
    # grew by about the gradients' size. The small ones do not wait: on a deep
    # stack of small layers the wait cost more step time than their copies
    # cost memory (graph_recorder._released_after).
    from tb_stagnation.callback.graph_recorder import UNHELD_GRADIENT_BYTES

    built = _ops_of_record_gradients(monkeypatch)  # per traced step: the pass's ops
    applied: list = []  # per traced step: the gradients the optimizer received
    apply = keras.optimizers.Adam.apply

    def spied(self, grads, *args, **kwargs):
        if not tf.executing_eagerly():
            applied.append(list(grads))
        return apply(self, grads, *args, **kwargs)

    monkeypatch.setattr(keras.optimizers.Adam, "apply", spied)
    features, width = 1100, 2048
    assert features * width * 4 > UNHELD_GRADIENT_BYTES  # the wide kernel alone is large
    x, y = _classification_data(n=64, features=features)
    model = keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(width, activation="relu", name="wide"),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = StagnationCallback(str(tmp_path), gradient_freq=gradient_freq)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    assert built and len(applied) == len(built)
    wide = model.get_layer("wide").kernel
    for ops, grads in zip(built, applied):
        assert len(grads) == len(model.trainable_variables)
        # The op that ends the pass: its cond, or (measured on every step) the state's write.
        last = [op for op in ops if op.type in ("If", "StatelessIf", "AssignVariableOp")]
        assert last
        for variable, grad in zip(model.trainable_variables, grads):
            upstream = _ancestors([grad])
            waits = [op in upstream for op in last]
            assert all(waits) if variable is wide else not any(waits), variable.path
    assert read_run(tmp_path).series(tags.GRAD_STEPS) == [1.0 if gradient_freq == 8 else 2.0]


def test_probe_size_zero_turns_prediction_statistics_off(tmp_path):
    x, y = _classification_data(n=64)
    model = _sequential()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path), probe_size=0)],
    )
    run = read_run(tmp_path)
    assert not run.scalar(tags.PRED_ENTROPY)
    assert np.all(np.isnan(run.layer(tags.LAYER_DEAD_FRACTION, 0)))
    # Two steps, the default gradient_freq (32) measures the first of each epoch.
    assert run.series(tags.GRAD_STEPS) == [1.0]


def test_by_default_every_32nd_step_and_each_epochs_first_are_measured(tmp_path):
    # 40 steps an epoch: steps 0 and 32 of each epoch; a second epoch starts again at 0.
    x, y = _classification_data(n=40 * 8)
    model = _sequential()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
    )
    run = read_run(tmp_path)
    assert run.series(tags.BATCHES_SEEN) == [40.0, 40.0]
    assert run.series(tags.GRAD_STEPS) == [2.0, 2.0]
    assert run.card()["gradient_freq"] == 32


@pytest.mark.parametrize(
    "bad",
    [
        {"update_freq": 0},
        {"update_freq": "sometimes"},
        {"probe_size": -1},
        {"gradient_freq": 0},
    ],
)
def test_invalid_arguments_are_rejected(bad):
    with pytest.raises(ValueError):
        StagnationCallback(**bad)


def test_two_inputs_an_embedding_and_a_nested_model(tmp_path):
    keras.utils.set_random_seed(14)
    rng = np.random.default_rng(14)
    tokens = rng.integers(0, 50, size=(96, 4)).astype("int32")
    numbers = rng.normal(size=(96, 3)).astype("float32")
    y = (numbers[:, 0] > 0).astype("int64")
    token_in = keras.Input((4,), dtype="int32", name="tokens")
    number_in = keras.Input((3,), name="numbers")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(50, 2, name="embed")(token_in))
    inner = keras.Sequential(
        [keras.Input((11,)), keras.layers.Dense(6, activation="relu", name="dense")], name="inner"
    )
    hidden = inner(keras.layers.Concatenate()([embedded, number_in]))
    out = keras.layers.Dense(2, activation="softmax", name="dense")(hidden)
    model = keras.Model({"tokens": token_in, "numbers": number_in}, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        {"tokens": tokens, "numbers": numbers},
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path), gradient_freq=1)],
    )
    run = read_run(tmp_path)
    card = run.card()
    # Two layers named "dense": the nested one is told apart by its path.
    assert [layer["name"] for layer in card["layers"]] == ["embed", "inner/dense", "dense"]
    assert np.all(run.layer(tags.LAYER_GRAD_NORM, 1) > 0)  # the embedding's sparse gradients too
    assert np.all(run.layer(tags.LAYER_UPDATE_RATIO, 1) > 0)
    every_input = np.concatenate([tokens.ravel().astype("float64"), numbers.ravel()])
    np.testing.assert_allclose(run.series(tags.INPUT_MEAN), every_input.mean(), rtol=1e-5)
    np.testing.assert_allclose(run.series(tags.INPUT_MAX_ABS), np.abs(every_input).max())
    assert sorted(run.scalar(tags.PRED_TOP_CLASS_SHARE)) == [0, 1]
    assert run.series(tags.BATCHES_DISTINCT) == [3.0, 3.0]


def test_convolution_units_are_channels_and_sample_weights_pass(tmp_path):
    keras.utils.set_random_seed(15)
    rng = np.random.default_rng(15)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 2, 64)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Conv2D(
                3, 3, activation="relu", bias_initializer=keras.initializers.Constant(-50.0)
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        validation_split=0.25,
        class_weight={0: 1.0, 1: 3.0},
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path))],
    )
    run = read_run(tmp_path)
    dead = run.layer(tags.LAYER_DEAD_FRACTION, 0)
    assert 0 <= dead[0] < 1 and dead[1] == 1.0 and np.isnan(dead[2])
    # validation_split keeps the last quarter out of training.
    np.testing.assert_array_equal(
        run.tensors[tags.LABEL_CLASS_COUNTS][0], np.bincount(y[:48], minlength=2)
    )
    assert run.series(tags.BATCHES_SEEN) == [3.0]
    assert tags.logs_tag("val_loss") in run.scalars


def test_distinct_batches_are_counted_past_the_device_ring(tmp_path):
    # 1100 steps: more than the 1024 fingerprints the device keeps between reads.
    keras.utils.set_random_seed(16)
    x, y = _classification_data(n=1100, seed=16)
    model = _sequential()
    model.compile("sgd", "sparse_categorical_crossentropy")
    singles = tf.data.Dataset.from_tensor_slices((x, y)).batch(1).repeat()
    model.fit(
        singles,
        steps_per_epoch=1100,
        epochs=1,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "all"), probe_size=0)],
    )
    assert read_run(tmp_path / "all").series(tags.BATCHES_DISTINCT) == [1100.0]
    cycle = tf.data.Dataset.from_tensor_slices((x[:21], y[:21])).batch(7).repeat()
    model.fit(
        cycle,
        steps_per_epoch=1100,
        epochs=1,
        verbose=0,
        callbacks=[StagnationCallback(str(tmp_path / "three"), probe_size=0)],
    )
    run = read_run(tmp_path / "three")
    assert run.series(tags.BATCHES_DISTINCT) == [3.0]
    assert run.series(tags.BATCHES_SEEN) == [1100.0]


def test_a_sequential_model_without_input_is_built_before_tracing(tmp_path):
    keras.utils.set_random_seed(17)
    x, y = _classification_data(n=64, seed=17)
    model = keras.Sequential(
        [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        x, y, batch_size=32, epochs=2, verbose=0, callbacks=[StagnationCallback(str(tmp_path))]
    )
    run = read_run(tmp_path)
    assert [layer["params"] for layer in run.card()["layers"]] == [56, 27]
    assert run.card()["task"] == "classification"
    assert np.all(run.layer(tags.LAYER_GRAD_NORM, 0) > 0)
    assert np.all(run.layer(tags.LAYER_UPDATE_RATIO, 0) > 0)  # the first epoch's start was seen


@pytest.mark.parametrize("jit_compile", [False, True])
def test_layer_gradient_norms_equal_those_of_the_step(tmp_path, jit_compile):
    # Layers of repeated shapes (their small gradients are stacked by shape),
    # one kernel too large to stack, and layers in an order the stacking
    # permutes: every layer's logged norm must be its own gradient's.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 300)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((300,)),
            keras.layers.Dense(300, activation="tanh"),  # 90,000-entry kernel
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, jit_compile=jit_compile)
    with tf.GradientTape() as tape:
        value = loss(y, model(x, training=True))
    grads = tape.gradient(value, model.trainable_weights)
    expected = [
        math.sqrt(sum(float(tf.reduce_sum(g * g)) for g in grads[2 * i : 2 * i + 2]))
        for i in range(5)
    ]
    callback = StagnationCallback(log_dir=str(tmp_path), gradient_freq=1, probe_size=0)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    run = read_run(tmp_path)
    np.testing.assert_allclose(run.layer(tags.LAYER_GRAD_NORM, 0), expected, rtol=1e-4)
    total = math.sqrt(sum(e * e for e in expected))
    np.testing.assert_allclose(run.scalar(tags.GRAD_GLOBAL_NORM)[0], total, rtol=1e-4)
