"""StagnationCallback under `tf.distribute.MirroredStrategy` on two logical CPUs.

Logical devices must be configured before TensorFlow initialises, so the
training runs in a fresh Python process; this process reads its logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
from test_callback_support import read_run

from tb_stagnation.summary import tags

_SCRIPT = textwrap.dedent(
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
    assert "_compute_loss" not in vars(model) and model.train_function is None
    print("TRAINED")
    """
)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
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
