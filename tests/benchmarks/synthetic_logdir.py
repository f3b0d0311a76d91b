"""Builds large logdirs in the summary format, fast and without TensorFlow.

The benchmarks share it: a logdir of R runs x E epochs x L layers, cached
under /tmp so a second benchmark run skips the writing. A third of the runs
stall halfway (loss flat at the constant-predictor baseline, gradients ~0),
so the analysis does its full work on them.
"""

from __future__ import annotations

import math
import os

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from tb_stagnation.summary import tags
from tb_stagnation.summary.writer import SummaryWriter

NUM_CLASSES = 10
# The folders keras.callbacks.TensorBoard writes a run's epoch scalars to.
ROLES = ("train", "validation")


def build(runs: int = 100, epochs: int = 300, layers: int = 30, root: str = "/tmp") -> str:
    """Path of a logdir with that shape, written once and then reused."""
    rng = np.random.default_rng(0)
    return _build_once(
        os.path.join(root, f"tb_stagnation_bench_{runs}x{epochs}x{layers}"),
        runs,
        lambda run_dir, stalls: _write_run(run_dir, epochs, layers, stalls, rng),
    )


def build_keras_only(runs: int = 100, epochs: int = 300, root: str = "/tmp") -> str:
    """Path of a logdir of R runs as `keras.callbacks.TensorBoard` alone logs
    them (`train/` and `validation/` epoch scalars), written once and reused.
    A third of the runs stall halfway, as in `build`."""
    return _build_once(
        os.path.join(root, f"tb_stagnation_bench_keras_{runs}x{epochs}"),
        runs,
        lambda run_dir, stalls: _write_keras_run(run_dir, epochs, stalls),
    )


def _build_once(logdir: str, runs: int, write_run) -> str:
    """`logdir`, its runs written by `write_run(run_dir, stalls)` unless a
    complete earlier build is there; every third run stalls."""
    done = os.path.join(logdir, ".complete")
    if os.path.exists(done):
        return logdir
    for run in range(runs):
        write_run(os.path.join(logdir, f"run_{run:04d}"), run % 3 == 0)
    with open(done, "w") as marker:
        marker.write("ok\n")
    return logdir


def _loss(epoch: int, epochs: int, stalls: bool) -> tuple[bool, float]:
    """(stalled, loss) at `epoch`: decaying, or flat at the constant-predictor
    baseline from halfway on in a run that stalls."""
    baseline = math.log(NUM_CLASSES)
    stalled = stalls and epoch >= epochs // 2
    progress = min(epoch, epochs // 2) if stalls else epoch
    return stalled, baseline if stalled else baseline * math.exp(-progress / 40) + 0.05


def _write_keras_run(log_dir: str, epochs: int, stalls: bool) -> None:
    baseline = math.log(NUM_CLASSES)
    writers = {role: EventFileWriter(os.path.join(log_dir, role)) for role in ROLES}
    for epoch in range(epochs):
        stalled, loss = _loss(epoch, epochs, stalls)
        accuracy = 0.1 if stalled else 1 - loss / baseline * 0.9
        values = {
            "train": {"epoch_loss": loss, "epoch_accuracy": accuracy, "epoch_learning_rate": 1e-3},
            "validation": {"epoch_loss": loss * 1.05, "epoch_accuracy": accuracy * 0.98},
        }
        for role, writer in writers.items():
            summary = summary_pb2.Summary(
                value=[keras_scalar(tag, value, epoch) for tag, value in values[role].items()]
            )
            writer.add_event(event_pb2.Event(step=epoch, wall_time=1.7e9 + epoch, summary=summary))
    for writer in writers.values():
        writer.close()


def keras_scalar(tag: str, value: float, epoch: int):
    """One scalar as Keras writes it: a tensor, the "scalars" plugin named
    with the first point."""
    entry = summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(value))
    )
    if epoch == 0:
        entry.metadata.CopyFrom(scalar_metadata.create_summary_metadata("", ""))
    return entry


def _write_run(log_dir: str, epochs: int, layers: int, stalls: bool, rng) -> None:
    writer = SummaryWriter(os.path.join(log_dir, tags.RUN_SUBDIR), flush_secs=3600)
    writer.write_model_card(
        0,
        {
            "format_version": 1,
            "model_class": "Sequential",
            "loss": "sparse_categorical_crossentropy",
            "task": "classification",
            "num_classes": NUM_CLASSES,
            "output_activation": "softmax",
            "layers": [
                {
                    "name": f"dense_{i}",
                    "type": "Dense",
                    "activation": "relu",
                    "trainable": True,
                    "params": 4160,
                }
                for i in range(layers)
            ],
        },
    )
    baseline = math.log(NUM_CLASSES)
    for epoch in range(epochs):
        stalled, loss = _loss(epoch, epochs, stalls)
        grad = (1e-9 if stalled else 0.5) * rng.uniform(0.5, 1.5, layers)
        writer.write_step(
            epoch,
            scalars={
                tags.logs_tag("loss"): loss,
                tags.logs_tag("accuracy"): 0.1 if stalled else 1 - loss / baseline * 0.9,
                tags.logs_tag("val_loss"): loss * 1.05,
                tags.logs_tag("val_accuracy"): 0.1 if stalled else 1 - loss / baseline * 0.95,
                tags.LEARNING_RATE: 1e-9 if stalled else 1e-3,
                tags.GRAD_GLOBAL_NORM: float(np.linalg.norm(grad)),
                tags.GRAD_NONFINITE_FRACTION: 0.0,
                tags.WEIGHT_GLOBAL_NORM: 30.0,
                tags.UPDATE_GLOBAL_NORM: 1e-9 if stalled else 0.03,
                tags.UPDATE_GLOBAL_RATIO: 3e-11 if stalled else 1e-3,
                tags.PRED_ENTROPY: 0.99 if stalled else 0.3,
                tags.PRED_CLASS_ENTROPY: 0.0 if stalled else 0.98,
                tags.PRED_TOP_CLASS_SHARE: 1.0 if stalled else 0.12,
                tags.PRED_CHANGED_SHARE: 0.0 if stalled else 0.05,
                tags.INPUT_MEAN: 0.1,
                tags.INPUT_STD: 1.0,
                tags.INPUT_MAX_ABS: 4.0,
                tags.BATCHES_DISTINCT: 50,
                tags.BATCHES_SEEN: 50,
            },
            layer_stats={
                tags.LAYER_GRAD_NORM: grad,
                tags.LAYER_WEIGHT_NORM: np.full(layers, 5.0),
                tags.LAYER_UPDATE_NORM: grad * 1e-3,
                tags.LAYER_UPDATE_RATIO: grad * 2e-4,
                tags.LAYER_NONFINITE_FRACTION: np.zeros(layers),
                tags.LAYER_DEAD_FRACTION: rng.uniform(0, 0.2, layers),
                tags.LAYER_SATURATED_FRACTION: np.full(layers, np.nan),
            },
            class_counts=np.full(NUM_CLASSES, 160.0),
            wall_time=1.7e9 + epoch,
        )
    writer.close()
