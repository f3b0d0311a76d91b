"""What the callback must know about the `tf.distribute` strategy it runs under.

Under `MultiWorkerMirroredStrategy` every worker runs the same `fit` with the
same callbacks. Only one of them (the chief) may write, or TensorBoard would
show a run per worker and the workers would fight over one directory; the
others must not slow training down, since each step waits for the slowest
worker. The split is:

- graph side, identical on every worker: our variables are created under the
  strategy's scope, which broadcasts their initial values from the chief, so
  every worker must create the same variables in the same order or the chief
  waits forever;
- in the train step, our ops only on the chief (they hold no collectives, so
  the workers' graphs may differ);
- host side (reads, probe passes, writing, printing) only on the chief.
"""

from __future__ import annotations

from typing import Any

from tb_stagnation.compat import keras as compat_keras


def writes_summaries(strategy: Any) -> bool:
    """True on the one process that should write: the chief, or the only process.

    `should_save_summary` is TensorFlow's answer to exactly this question
    (False on non-chief `MultiWorkerMirroredStrategy` workers; True for every
    single-process strategy).
    """
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "should_save_summary", True))


def worker_count(strategy: Any) -> int:
    """How many processes train together (1 unless multi-worker)."""
    return compat_keras.multi_worker_count(strategy)


def replicas_in_sync(strategy: Any) -> int:
    """Replicas over all workers that average each step's gradients."""
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
