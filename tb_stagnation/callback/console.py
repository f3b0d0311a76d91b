"""Printing from inside `fit`, the way Keras's own callbacks print."""

import sys
import types
import warnings


def print_message(message: str) -> None:
    """Print through Keras's `print_msg`, which follows its logging settings
    (absl or stdout) as EarlyStopping's messages do.

    With no usable stdout (`pythonw`, a service, a closed stream) the message
    is dropped: a line of ours is never worth the user's training.
    """
    stdout = sys.stdout
    if stdout is None or getattr(stdout, "closed", False):
        return
    from tb_stagnation.compat.keras import keras_print

    print_msg = keras_print()
    try:
        print_msg(message)
    except (OSError, ValueError, AttributeError):  # closed or broken under us
        pass


# Frames of these packages are never "the user's code": a warning raised from
# inside fit() points at the first frame outside them (the user's fit call).
_LIBRARY_PACKAGES = frozenset(
    {"tb_stagnation", "keras", "tensorflow", "tf_keras", "absl", "threading", "contextlib"}
)


def warn_at_user_code(message: str, category: type[Warning]) -> None:
    """`warnings.warn`, shown at the user's line that called into us (their
    `model.fit(...)`), not at a line of this package or of Keras; with no such
    frame (every caller is library code), at the outermost one.

    Never raises: a warning of ours must not become the user's exception.
    """
    try:
        outermost: types.FrameType = sys._getframe(1)
        frame: types.FrameType | None = outermost
        while frame is not None:
            module = str(frame.f_globals.get("__name__") or "")
            if module.split(".")[0] not in _LIBRARY_PACKAGES:
                break
            outermost = frame
            frame = frame.f_back
        target = frame or outermost
        # No module_globals: its loader would be asked for the source, and
        # `python -c`'s __main__ answers that with an ImportError.
        warnings.warn_explicit(
            message,
            category,
            target.f_code.co_filename,
            target.f_lineno,
            module=str(target.f_globals.get("__name__") or "") or None,
            registry=target.f_globals.setdefault("__warningregistry__", {}),
        )
    except Warning:
        raise  # -W error: the user asked for warnings as exceptions
    except Exception:  # noqa: BLE001 - fall back to a plain warning
        warnings.warn(message, category, stacklevel=2)
