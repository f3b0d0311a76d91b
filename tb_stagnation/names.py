"""User data (run names, patterns) shortened for one-line messages.

A run name is a folder path and may be kilobytes long; an error line that
repeats it whole buries what it says. Messages show its start and its end
(where nested runs differ) and how much was cut, so the name stays
recognisable; the JSON reports keep names whole.
"""

from __future__ import annotations

# Long enough for the run names people type, short enough for one line.
MESSAGE_NAME_CHARS = 80


def shorten(text: str, limit: int = MESSAGE_NAME_CHARS) -> str:
    """`text` when at most `limit` characters; else its start, `...`, its end and
    "(N characters cut)", about `limit` characters in all."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 24, 8)  # room for "...", the count and its words
    head = (keep * 2 + 2) // 3
    tail = keep - head
    cut = len(text) - head - tail
    return f"{text[:head]}...{text[len(text) - tail :]} ({cut} characters cut)"


def printable(text: object) -> str:
    """User data (run and layer names) without control characters that break a
    terminal: each one is shown as its escape (a tab as `\\t`)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
