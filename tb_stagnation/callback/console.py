"""Printing from inside `fit`, the way Keras's own callbacks print."""

import sys


def print_message(message: str) -> None:
    """Print through Keras's `print_msg`, which follows its logging settings
    (absl or stdout) as EarlyStopping's messages do.

    With no usable stdout (`pythonw`, a service, a closed stream) the message
    is dropped: a line of ours is never worth the user's training.
    """
    stdout = sys.stdout
    if stdout is None or getattr(stdout, "closed", False):
        return
    try:
        from keras.src.utils.io_utils import print_msg
    except ImportError:  # pragma: no cover - Keras moved it
        print_msg = print
    try:
        print_msg(message)
    except (OSError, ValueError, AttributeError):  # closed or broken under us
        pass
