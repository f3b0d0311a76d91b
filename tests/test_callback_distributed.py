"""StagnationCallback under `tf.distribute`: MirroredStrategy on two logical CPUs,
and a real two-worker MultiWorkerMirroredStrategy cluster of local processes
talking over loopback (TF_CONFIG).

Strategies need their devices or cluster before TensorFlow starts, so every
training runs in processes of its own (tests/distributed_training.py); this
process reads their logs and compares them with a run without a strategy.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from callback_support import read_run

import tb_stagnation
from tb_stagnation.summary import tags

_TRAINING = Path(__file__).with_name("distributed_training.py")
# Scenarios (scenarios.py) whose diagnosis must not depend on the strategy.
_SCENARIOS = ["learning_rate_too_small", "vanishing_gradients", "loss_output_mismatch"]
_JOBS = ["full_batch", *_SCENARIOS]
_TIMEOUT = 600


def _env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _results(stdout: str) -> dict:
    """The JSON lines distributed_training.py printed, by job."""
    lines = [line[len("RESULT ") :] for line in stdout.splitlines() if line.startswith("RESULT ")]
    return {result["job"]: result for result in map(json.loads, lines)}


def _train(strategy: str, log_dir: Path, jobs: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, str(_TRAINING), "--strategy", strategy, str(log_dir), *jobs],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return _results(result.stdout)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _train_cluster(log_dir: Path, jobs: list[str], *options: str) -> list[dict]:
    """Run `jobs` on a two-worker cluster; each worker's results (worker 0 first)."""
    ports = ",".join(str(p) for p in _free_ports(2))
    # Output goes to files: a worker blocked on a full pipe would stall the
    # other one at the next collective.
    outputs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in range(2)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(_TRAINING),
                "--strategy",
                "multiworker",
                "--worker",
                str(index),
                "--ports",
                ports,
                *options,
                str(log_dir),
                *jobs,
            ],
            stdout=stdout,
            stderr=stderr,
            text=True,
            env=_env(),
        )
        for index, (stdout, stderr) in enumerate(outputs)
    ]
    try:
        for worker in workers:
            worker.wait(timeout=_TIMEOUT)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()  # a hung collective must not hang the test session
                worker.wait()
    texts = []
    for stdout, stderr in outputs:
        stdout.seek(0)
        stderr.seek(0)
        texts.append((stdout.read(), stderr.read()))
        stdout.close()
        stderr.close()
    for worker, (_, stderr) in zip(workers, texts):
        assert worker.returncode == 0, stderr[-3000:]
    return [_results(stdout) for stdout, _ in texts]


def _event_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.rglob("*") if p.is_file())


def _report(log_dir: Path) -> dict:
    (report,) = tb_stagnation.analyze(str(log_dir))["runs"]
    return report


def _codes(report: dict) -> list[str]:
    return [finding["code"] for finding in report["findings"]]


@pytest.fixture(scope="module")
def without_strategy(tmp_path_factory) -> tuple[Path, dict]:
    log_dir = tmp_path_factory.mktemp("no_strategy")
    return log_dir, _train("none", log_dir, _JOBS)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> tuple[Path, list[dict]]:
    log_dir = tmp_path_factory.mktemp("cluster")
    return log_dir, _train_cluster(log_dir, _JOBS)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory) -> tuple[Path, dict]:
    log_dir = tmp_path_factory.mktemp("mirrored")
    return log_dir, _train("mirrored", log_dir, [*_JOBS, "full_batch_scaled"])


# ------------------------------------------------------------- multi-worker


def test_only_the_chief_writes_and_records(cluster):
    log_dir, (chief, worker) = cluster
    assert all(r["chief"] and r["replicas"] == 2 for r in chief.values())
    assert not any(r["chief"] for r in worker.values())
    chief_pid = chief["full_batch"]["pid"]
    files = _event_files(log_dir)
    # One event file per job (both workers were given the same log_dir), the chief's.
    assert sorted(p.parent.parent.name for p in files) == sorted(_JOBS)
    for path in files:
        assert f".{chief_pid}." in path.name, path
    # The non-chief adds nothing to its train step (the chief's recorder does).
    assert all(r["traced_recordings"] > 0 for r in chief.values())
    assert all(r["traced_recordings"] == 0 for r in worker.values())
    # The non-chief printed nothing either: no pre-flight, no warning.
    assert chief["loss_output_mismatch"]["warnings"]
    assert all(r["warnings"] == [] for r in worker.values())


def test_multiworker_gradients_are_those_of_the_whole_step(cluster):
    log_dir, (chief, _) = cluster
    expected = chief["full_batch"]
    run = read_run(log_dir / "full_batch")
    # SGD with learning rate 0 on one fixed batch: every epoch measures the
    # gradient of that batch's mean loss at the same weights.
    np.testing.assert_allclose(
        run.series(tags.GRAD_GLOBAL_NORM), [expected["reference_global_norm"]] * 2, rtol=1e-5
    )
    for epoch in (0, 1):
        np.testing.assert_allclose(
            run.layer(tags.LAYER_GRAD_NORM, epoch), expected["reference_layer_norms"], rtol=1e-5
        )
    # Not one worker's half of the batch (what a per-replica reading gives).
    assert abs(expected["first_half_global_norm"] / expected["reference_global_norm"] - 1) > 0.02
    # Counts are those of the model's steps, not the chief's replica alone nor a sum.
    assert run.series(tags.GRAD_STEPS) == [1.0, 1.0]
    assert run.series(tags.BATCHES_SEEN) == [1.0, 1.0]


@pytest.mark.parametrize("scenario", _SCENARIOS)
def test_multiworker_diagnosis_matches_a_run_without_strategy(cluster, without_strategy, scenario):
    cluster_dir, (chief, _) = cluster
    plain_dir, plain = without_strategy
    distributed, reference = _report(cluster_dir / scenario), _report(plain_dir / scenario)
    assert not reference["healthy"]
    assert _codes(distributed)[:1] == _codes(reference)[:1]
    assert set(_codes(distributed)) == set(_codes(reference))
    assert distributed["stalled_epochs"] == reference["stalled_epochs"]
    assert distributed["epochs"] == reference["epochs"]
    # The chief prints the pre-flight warnings a single process prints (the
    # sample counts differ: the chief sees its shard of the first batch).
    assert _warned_codes(chief[scenario]) == _warned_codes(plain[scenario])


def _warned_codes(result: dict) -> list[tuple[str, list[str]]]:
    return [
        (w["category"], re.findall(r"^  (\w+): ", w["message"], re.MULTILINE))
        for w in result["warnings"]
    ]


def test_stop_on_stall_is_declined_under_multiworker_and_training_finishes(tmp_path):
    chief, worker = _train_cluster(tmp_path, ["learning_rate_too_small"], "--stop-on-stall")
    (warning,) = chief["learning_rate_too_small"]["warnings"]
    assert "MultiWorkerMirroredStrategy" in warning["message"]
    assert warning["category"] == "RuntimeWarning"
    assert worker["learning_rate_too_small"]["warnings"] == []
    # Stopping one worker would leave the other waiting forever: all epochs ran.
    report = _report(tmp_path / "learning_rate_too_small")
    assert report["epochs"] == 14 and _codes(report)[0] == "learning_rate_too_small"


# ------------------------------------------------------------------ mirrored


@pytest.mark.parametrize("job", ["full_batch", "full_batch_scaled"])
def test_mirrored_gradients_are_those_of_the_whole_step(mirrored, without_strategy, job):
    log_dir, results = mirrored
    expected = results[job]
    assert expected["replicas"] == 2
    # A LossScaleOptimizer's inner optimizer sums the unscaled gradients.
    run = read_run(log_dir / job)
    plain = read_run(without_strategy[0] / "full_batch")
    np.testing.assert_allclose(
        run.series(tags.GRAD_GLOBAL_NORM), [expected["reference_global_norm"]] * 2, rtol=1e-5
    )
    np.testing.assert_allclose(
        run.layer(tags.LAYER_GRAD_NORM, 0), plain.layer(tags.LAYER_GRAD_NORM, 0), rtol=1e-5
    )
    assert run.series(tags.GRAD_STEPS) == [1.0, 1.0]


@pytest.mark.parametrize("scenario", _SCENARIOS)
def test_mirrored_diagnosis_matches_a_run_without_strategy(mirrored, without_strategy, scenario):
    distributed = _report(mirrored[0] / scenario)
    reference = _report(without_strategy[0] / scenario)
    assert set(_codes(distributed)) == set(_codes(reference))
    assert _codes(distributed)[:1] == _codes(reference)[:1]
    assert distributed["stalled_epochs"] == reference["stalled_epochs"]


_STATS_SCRIPT = textwrap.dedent(
    """
    import os, sys, warnings
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras
    import numpy as np
    from tb_stagnation import StagnationCallback
    from tb_stagnation.callback.hooks import is_instrumented

    log_dir = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0,
                  callbacks=[StagnationCallback(os.path.join(log_dir, "varied"), gradient_freq=1)])
        repeated = tf.data.Dataset.from_tensors((x[:32], y[:32])).repeat()
        model.fit(repeated, steps_per_epoch=3, epochs=1, verbose=0,
                  callbacks=[StagnationCallback(os.path.join(log_dir, "repeated"))])
    ours = [r for r in records if "StagnationCallback" in str(r.message)]
    assert not ours, [str(r.message) for r in ours]
    assert "_compute_loss" not in vars(model) and not is_instrumented(model.train_function)
    assert "_all_reduce_sum_gradients" not in vars(model.optimizer)
    print("TRAINED")
    """
)


def test_mirrored_strategy_data_statistics_cover_every_replica(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _STATS_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        env=_env(),
    )
    assert result.returncode == 0 and "TRAINED" in result.stdout, result.stderr[-3000:]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0).astype("int64")
    run = read_run(tmp_path / "varied")
    # Counts are of the whole model, not one replica nor their sum.
    assert run.series(tags.BATCHES_SEEN) == [4.0, 4.0]
    assert run.series(tags.GRAD_STEPS) == [4.0, 4.0]
    assert run.series(tags.BATCHES_DISTINCT) == [4.0, 4.0]
    # Sums are over every replica's samples.
    for step in (0, 1):
        np.testing.assert_array_equal(
            run.tensors[tags.LABEL_CLASS_COUNTS][step], np.bincount(y, minlength=3)
        )
    np.testing.assert_allclose(run.series(tags.INPUT_MEAN), x.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(run.series(tags.INPUT_STD), x.std(), rtol=1e-4)
    assert all(v > 0 for v in run.series(tags.GRAD_GLOBAL_NORM))
    assert all(0 < v < 1 for v in run.series(tags.UPDATE_GLOBAL_RATIO))
    assert sorted(run.scalar(tags.PRED_ENTROPY)) == [0, 1]
    assert 0 <= run.layer(tags.LAYER_DEAD_FRACTION, 1)[0] <= 1
    card = run.card()
    assert card["batch_size"] == 32 and card["steps_per_epoch"] == 4

    repeated = read_run(tmp_path / "repeated")
    assert repeated.series(tags.BATCHES_DISTINCT) == [1.0]
    assert repeated.series(tags.BATCHES_SEEN) == [3.0]
