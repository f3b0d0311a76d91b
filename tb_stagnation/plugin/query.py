"""Query parameters, parsed strictly: a malformed query is a 400, not a guess.

Werkzeug's own parsing is lenient (bad UTF-8 becomes U+FFFD, `a&&b` is
fine), which would turn a garbled run name into a confusing 404. Here the raw
query string must be well-formed, percent-decode to UTF-8, and name `run`
exactly once.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from werkzeug import wrappers

from tb_stagnation.plugin.responses import BadRequestError

# Longest run name accepted. Run names are folder paths relative to the
# logdir: 10 kB of nested folders is legitimate, 1 MB is not.
MAX_RUN_CHARS = 16_384
# The whole query; the run name may triple in size when percent-encoded.
MAX_QUERY_BYTES = 4 * MAX_RUN_CHARS
# parse_qsl keeps a `%` not followed by two hex digits as a literal `%`: `run=%`
# would name a run "%" and get a 404 for a URL the client garbled.
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def run_param(request: wrappers.Request) -> str:
    """The value of the single `run` parameter; raises BadRequestError."""
    raw = request.query_string
    if len(raw) > MAX_QUERY_BYTES:
        raise BadRequestError(
            f"query string too long ({len(raw)} bytes; the limit is {MAX_QUERY_BYTES})"
        )
    bad = _BAD_PERCENT.search(raw)
    if bad is not None:
        raise BadRequestError(
            f"malformed query string: '%' at offset {bad.start()} is not followed by two hex "
            "digits (encode the run name with encodeURIComponent)"
        )
    try:
        pairs = parse_qsl(
            raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw), errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequestError(
            "malformed query string: expected run=<URL-encoded UTF-8 name>"
        ) from None
    values = [value for key, value in pairs if key == "run"]
    if not values:
        raise BadRequestError("missing parameter: run")
    if len(values) > 1:
        raise BadRequestError("parameter run given more than once")
    (run,) = values
    if not run:
        raise BadRequestError("parameter run is empty")
    if len(run) > MAX_RUN_CHARS:
        raise BadRequestError(f"parameter run is too long ({len(run)} characters)")
    return run
