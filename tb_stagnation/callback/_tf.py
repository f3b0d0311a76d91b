"""Imports TensorFlow and Keras 3 for the callback, or explains what is missing.

TensorFlow is not a hard dependency of tb-stagnation (TensorBoard and the CLI
do not need it), so the callback is where a missing install surfaces.
"""

from __future__ import annotations

from types import ModuleType

# One home for the import and its install hint, shared with overfit_check and
# lr_range_test (which are not part of the callback).
from tb_stagnation.keras_import import import_tensorflow_and_keras  # noqa: F401


def require_tensorflow_backend(keras: ModuleType) -> None:
    """The hooks rely on the TensorFlow trainer; other backends train differently."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            "StagnationCallback supports the TensorFlow backend of Keras only; "
            f"KERAS_BACKEND is {backend!r}. Set KERAS_BACKEND=tensorflow."
        )
