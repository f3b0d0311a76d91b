"""Imports TensorFlow and Keras 3 for the callback, or explains what is missing.

TensorFlow is not a hard dependency of tb-stagnation (TensorBoard and the CLI
do not need it), so the callback is where a missing install surfaces.
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


def require_tensorflow_backend(keras: ModuleType) -> None:
    """The hooks rely on the TensorFlow trainer; other backends train differently."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            "StagnationCallback supports the TensorFlow backend of Keras only; "
            f"KERAS_BACKEND is {backend!r}. Set KERAS_BACKEND=tensorflow."
        )
