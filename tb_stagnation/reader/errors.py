"""Errors the reader raises, each with a message a person can act on."""


class LogdirError(Exception):
    """The logdir cannot be read at all (missing, not a directory, unreadable)."""


class UnknownRunError(KeyError):
    """A logical run name that the logdir does not hold."""

    def __str__(self) -> str:
        return f"no run named {self.args[0]!r} in this logdir"
