"""The frontend's files, served only from the package's `static/` folder.

A name is one plain path component with a known extension; anything else
(`..`, `a/b`, absolute paths, percent-encoded traversal once decoded, dot
files, a symlink leading out of the folder) is simply not found.
"""

from __future__ import annotations

import pathlib
import re
from typing import NamedTuple

STATIC_DIR = pathlib.Path(__file__).resolve().parent.parent / "static"

# Fixed, not `mimetypes`: Windows registries are known to map .js wrongly
# (tensorflow/tensorboard#3120) and browsers refuse modules with a wrong type.
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain",
}

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class StaticFile(NamedTuple):
    content: bytes
    content_type: str


def read_static(name: str, static_dir: pathlib.Path = STATIC_DIR) -> StaticFile | None:
    """The file `name` of `static_dir`, or None when it is not servable."""
    if not _PLAIN_NAME.fullmatch(name) or ".." in name:
        return None
    content_type = CONTENT_TYPES.get(pathlib.PurePosixPath(name).suffix.lower())
    if content_type is None:
        return None
    try:
        root = static_dir.resolve(strict=True)
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if path.parent != root or not path.is_file():
        return None
    try:
        return StaticFile(path.read_bytes(), content_type)
    except OSError:
        return None
