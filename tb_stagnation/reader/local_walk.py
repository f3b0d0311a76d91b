"""The event files of a local logdir, found the way TensorBoard's data server finds them.

TensorBoard's Rust data server (the default loader) follows symlinks but
never into a folder that contains the link (`loop -> .`), reads regular files
only (a FIFO named like an event file would block a reader forever), and
names a folder whose name is not UTF-8 with U+FFFD in place of the bad bytes.
Its Python `EventMultiplexer`, the fallback, does none of that: it hangs on
the FIFO and on some loops, lists a loop's folders ~40 times over, and fails
the whole logdir on one non-UTF-8 name. This walk gives the fallback the
server's view; for both loaders it also names the folders that could not be
read (a `chmod 000` folder is otherwise just "no runs").
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

# A tree of symlinks that never loops can still fan out exponentially
# (`a/x -> b`, `a/y -> b`, `b/x -> c`, ...); the walk stops after this many
# folders and says so.
MAX_FOLDERS = 100_000
# What TensorBoard's loaders take for an event file (io_wrapper, rustboard).
_EVENT_FILE_MARK = "tfevents"


@dataclass(frozen=True)
class UnreadableFolder:
    """A folder (or an event file) under the logdir that could not be read."""

    run: str  # the folder as a TensorBoard run name (relative to the logdir, "/"-joined)
    path: str
    reason: str  # the operating system's words, e.g. "Permission denied"

    @property
    def message(self) -> str:
        return f"Could not read {self.path} ({self.reason}): any run it holds is missing."


@dataclass
class LocalWalk:
    """TensorBoard run name -> its event files (paths, sorted), and what could not be read."""

    runs: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[UnreadableFolder] = field(default_factory=list)


def display_name(name: str) -> str:
    """A file name as TensorBoard's data server shows it: bytes that are not
    UTF-8 become U+FFFD (Python keeps them as lone surrogates)."""
    return os.fsencode(name).decode("utf-8", errors="replace")


def walk_logdir(logdir: str) -> LocalWalk:
    """Every folder holding an event file, symlinks followed except into a
    folder that contains the link."""
    root = os.path.expanduser(logdir)
    walk = LocalWalk()
    try:
        root_stat = os.stat(root)
    except OSError as error:
        walk.unreadable.append(UnreadableFolder(".", display_name(root), _reason(error)))
        return walk
    # (folder path, run name, identities of the folder and its ancestors)
    pending: list[tuple[str, str, tuple[tuple[int, int], ...]]] = [
        (root, ".", ((root_stat.st_dev, root_stat.st_ino),))
    ]
    visited = 0
    while pending:
        folder, run, ancestors = pending.pop()
        visited += 1
        if visited > MAX_FOLDERS:
            walk.unreadable.append(
                UnreadableFolder(
                    run, display_name(folder), f"more than {MAX_FOLDERS:,} folders, walk stopped"
                )
            )
            break
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            walk.unreadable.append(UnreadableFolder(run, display_name(folder), _reason(error)))
            continue
        files = []
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=True)
            except OSError:
                continue  # a dangling symlink: nothing to read, as for the data server
            if stat.S_ISDIR(info.st_mode):
                identity = (info.st_dev, info.st_ino)
                if identity in ancestors:
                    continue  # a link back into its own ancestry: a loop
                child_run = (
                    display_name(entry.name) if run == "." else f"{run}/{display_name(entry.name)}"
                )
                pending.append((entry.path, child_run, (*ancestors, identity)))
            elif stat.S_ISREG(info.st_mode) and _EVENT_FILE_MARK in entry.name:
                problem = _unopenable(entry.path)
                if problem is None:
                    files.append(entry.path)
                else:
                    walk.unreadable.append(UnreadableFolder(run, display_name(entry.path), problem))
        if files:
            walk.runs[run] = files
    return walk


def _unopenable(path: str) -> str | None:
    """Why `path` cannot be opened for reading, or None. O_NONBLOCK: a file
    that turned into a FIFO since its stat must not block the walk."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return _reason(error)
    os.close(descriptor)
    return None


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
