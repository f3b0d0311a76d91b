"""One process of a distributed training run, for tests/test_callback_distributed.py.

    python distributed_training.py --strategy none|mirrored|multiworker \
        [--worker I --ports P0,P1] LOG_DIR JOB [JOB ...]

A job is `full_batch` (a fixed 64-sample batch, SGD with learning rate 0, so
every epoch measures the gradient of that one batch at the same weights),
`full_batch_scaled` (the same inside a LossScaleOptimizer) or the name of a
scenario in scenarios.py. Every process of a cluster runs the
same jobs in the same order, each logging to LOG_DIR/JOB, and prints one JSON
line per job: its pid, its role, the warnings our code raised, how many times
our recorder added ops to a traced train step and, for `full_batch`, the
reference per-layer gradient norms computed with a plain GradientTape on the
whole batch.

Strategies need their devices or TF_CONFIG before TensorFlow starts, hence
a process of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FULL_BATCH = 64


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", choices=("none", "mirrored", "multiworker"), required=True)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--ports", default="")
    parser.add_argument("--stop-on-stall", action="store_true")
    parser.add_argument("log_dir")
    parser.add_argument("jobs", nargs="+")
    return parser.parse_args()


def _strategy(args: argparse.Namespace):
    if args.strategy == "multiworker":
        workers = [f"localhost:{port}" for port in args.ports.split(",")]
        os.environ["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.worker}}
        )
    import tensorflow as tf

    if args.strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
        )
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    if args.strategy == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _work_around_keras_multiworker_fit()
        return strategy
    return None


def _work_around_keras_multiworker_fit() -> None:
    """Keras 3's own `fit` fails under MultiWorkerMirroredStrategy before any callback runs.

    keras-team/keras#20585 (open): the scalar logs are reduced with `axis=0`;
    `_maybe_symbolic_build` reduces the whole (x, y) batch at once. Both are
    patched here the way users of multi-worker Keras 3 have to; our callback
    is not involved in either.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None), values
            )
        return original(values, strategy, reduction)

    trainer.reduce_per_replica = reduce_per_replica

    def symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        for _, _, batches in iterator:
            batch = next(batches)
            break
        first = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], batch)
        with strategy.scope():
            self._symbolic_build(data_batch=first)

    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build


def _full_batch(
    keras, tf, strategy, log_dir: str, callback_kwargs: dict, loss_scaled: bool = False
) -> dict:
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.normal(size=(FULL_BATCH, 5)).astype("float32")
    y = rng.integers(0, 3, size=FULL_BATCH).astype("int32")

    def build():
        model = keras.Sequential(
            [
                keras.Input((5,)),
                keras.layers.Dense(8, activation="tanh"),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        weights = np.random.default_rng(8)
        model.set_weights([weights.normal(size=w.shape).astype("float32") for w in model.weights])
        optimizer = keras.optimizers.SGD(0.0)
        if loss_scaled:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=1024.0)
        model.compile(optimizer, "sparse_categorical_crossentropy")
        return model

    # The reference: the gradient of the mean loss over the whole batch.
    reference_model = build()
    with tf.GradientTape() as tape:
        loss = reference_model.compute_loss(x=x, y=y, y_pred=reference_model(x), training=True)
    grads = tape.gradient(loss, reference_model.trainable_variables)
    layer_norms = [
        float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads[i : i + 2]))) for i in (0, 2)
    ]
    # One replica's half of the batch: what a per-replica measurement would see.
    with tf.GradientTape() as tape:
        half = reference_model.compute_loss(
            x=x[: FULL_BATCH // 2],
            y=y[: FULL_BATCH // 2],
            y_pred=reference_model(x[: FULL_BATCH // 2]),
            training=True,
        )
    half_grads = tape.gradient(half, reference_model.trainable_variables)
    half_norm = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in half_grads)))

    model = _in_scope(strategy, build)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(FULL_BATCH)
    _fit(keras, model, dataset, 2, log_dir, dict(callback_kwargs, gradient_freq=1))
    return {
        "reference_layer_norms": layer_norms,
        "reference_global_norm": float(np.sqrt(sum(n * n for n in layer_norms))),
        "first_half_global_norm": half_norm,
    }


def _scenario(keras, tf, strategy, name: str, log_dir: str, callback_kwargs: dict) -> dict:
    from scenarios import BATCH, SCENARIOS

    scenario = SCENARIOS[name]
    keras.utils.set_random_seed(sum(ord(c) for c in name) % 10_000)

    def build():
        spec = scenario.build()
        model = spec["model"]
        model.compile(**spec["compile"])
        return model, spec

    model, spec = _in_scope(strategy, build)
    dataset = tf.data.Dataset.from_tensor_slices((spec["x"], spec["y"])).batch(BATCH)
    _fit(keras, model, dataset, scenario.epochs, log_dir, callback_kwargs)
    return {}


def _in_scope(strategy, build):
    if strategy is None:
        return build()
    with strategy.scope():
        return build()


def _fit(keras, model, dataset, epochs: int, log_dir: str, callback_kwargs: dict) -> None:
    from tb_stagnation import StagnationCallback

    callback = StagnationCallback(log_dir=log_dir, **callback_kwargs)
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[callback])


def _count_traced_recordings() -> dict:
    """Count the recorder's graph-building calls (each adds ops to a traced step)."""
    from tb_stagnation.callback.graph_recorder import GraphRecorder

    counts = {"calls": 0}
    for name in ("record_data", "record_gradients"):
        original = getattr(GraphRecorder, name)

        def spy(self, *args, _original=original, **kwargs):
            counts["calls"] += 1
            return _original(self, *args, **kwargs)

        setattr(GraphRecorder, name, spy)
    return counts


def main() -> None:
    args = _arguments()
    strategy = _strategy(args)
    import keras
    import tensorflow as tf

    from tb_stagnation.callback.preflight import PreflightWarning

    callback_kwargs = {"stop_on_stall": True} if args.stop_on_stall else {}
    traced = _count_traced_recordings()
    for job in args.jobs:
        traced["calls"] = 0
        log_dir = os.path.join(args.log_dir, job)
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            if job in ("full_batch", "full_batch_scaled"):
                scaled = job == "full_batch_scaled"
                result = _full_batch(keras, tf, strategy, log_dir, callback_kwargs, scaled)
            else:
                result = _scenario(keras, tf, strategy, job, log_dir, callback_kwargs)
        ours = [
            {"category": r.category.__name__, "message": str(r.message)}
            for r in records
            if issubclass(r.category, PreflightWarning) or "StagnationCallback" in str(r.message)
        ]
        extended = getattr(strategy, "extended", None)
        result.update(
            job=job,
            pid=os.getpid(),
            chief=bool(getattr(extended, "should_save_summary", True)),
            replicas=int(getattr(strategy, "num_replicas_in_sync", 1)),
            warnings=ours,
            traced_recordings=traced["calls"],
        )
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
