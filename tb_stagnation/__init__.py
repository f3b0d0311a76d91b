"""tb_stagnation: why does my Keras model's loss stay the same every epoch?

`StagnationCallback` logs what a diagnosis needs; `analyze(logdir)` diagnoses
runs; the TensorBoard "Stagnation" tab and `tb-stagnation report` show it.

Names are loaded on first use so that TensorBoard and the CLI, which import
this package, never pay for `import tensorflow`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "StagnationCallback": "tb_stagnation.callback.stagnation_callback",
    "analyze": "tb_stagnation.analysis.api",
    "Analysis": "tb_stagnation.analysis.api",
    "overfit_check": "tb_stagnation.overfit",
    "lr_range_test": "tb_stagnation.lr_range",
    "PreflightWarning": "tb_stagnation.callback.preflight",
}

__all__ = sorted(_LAZY_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tb_stagnation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
