"""The Keras callback that records what a stagnation diagnosis needs.

`StagnationCallback` lives in `stagnation_callback.py`; the other modules each
do one job for it:

- `_tf.py`: imports TensorFlow and Keras, or says how to install them.
- `model_info.py`: the model's weight-owning layers, its outputs and task, the model card.
- `graph_recorder.py`: the in-graph accumulators the real training steps feed.
- `hooks.py`: puts the recorder into a model's training step and takes it out again.
- `probe.py`: the fixed probe batch: predictions and dead/saturated units at epoch end.
- `epoch_stats.py`: turns accumulators and weights into the per-epoch values (numpy only).

Nothing here is imported by `tb_stagnation` itself until `StagnationCallback`
is first used, so TensorBoard and the CLI never pay for `import tensorflow`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StagnationCallback"]


def __getattr__(name: str) -> Any:
    if name == "StagnationCallback":
        from tb_stagnation.callback.stagnation_callback import StagnationCallback

        return StagnationCallback
    raise AttributeError(f"module 'tb_stagnation.callback' has no attribute {name!r}")
