"""Imports TensorFlow and Keras 3, or explains what is missing.

TensorFlow is not a hard dependency of tb-stagnation (TensorBoard and the CLI
do not need it): the callback, `overfit_check` and `lr_range_test` are where a
missing install surfaces, each through this one function.
"""

from __future__ import annotations

from types import ModuleType

_INSTALL_HINT = (
    "StagnationCallback needs TensorFlow and Keras 3 with the TensorFlow backend. "
    "Install TensorFlow (`pip install tensorflow`), or `pip install tb-stagnation[cpu]` "
    "for the CPU build."
)


def import_tensorflow_and_keras() -> tuple[ModuleType, ModuleType]:
    """Return `(tensorflow, keras)`; raise ImportError with an install hint."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from error
    try:
        import keras
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from error
    if not str(getattr(keras, "__version__", "0")).startswith("3"):
        raise ImportError(f"{_INSTALL_HINT} Found Keras {getattr(keras, '__version__', '?')}.")
    return tf, keras
