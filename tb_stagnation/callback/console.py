"""Printing from inside `fit`, the way Keras's own callbacks print."""


def print_message(message: str) -> None:
    """Print through Keras's `print_msg`, which follows its logging settings
    (absl or stdout) as EarlyStopping's messages do."""
    try:
        from keras.src.utils.io_utils import print_msg
    except ImportError:  # pragma: no cover - Keras moved it
        print(message)
    else:
        print_msg(message)
