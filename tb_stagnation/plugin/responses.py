"""HTTP plumbing shared by the routes: JSON answers, JSON errors, one wrapper.

Every route is wrapped by `json_route`, which is where a request becomes an
answer or an error: a bad request is a 400, an unknown run a 404, anything
unexpected a 500 whose body is one line (the traceback goes to TensorBoard's
log, once). Nothing a route raises reaches the WSGI server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from tensorboard import errors as tb_errors
from tensorboard.backend import http_util
from werkzeug import wrappers

from tb_stagnation.names import shorten
from tb_stagnation.plugin import jsonable
from tb_stagnation.plugin.analyses import AnalysisError
from tb_stagnation.plugin.error_log import OnceLogger
from tb_stagnation.reader.errors import UnknownRunError

JSON = "application/json"
_ALLOWED_METHODS = ("GET", "HEAD")
_INTERNAL_ERROR = "internal error in the Stagnation plugin; TensorBoard's log has the details"

_log = OnceLogger()


class BadRequestError(Exception):
    """A parameter is missing or malformed; the message says which."""


def json_response(
    request: wrappers.Request, body: Any, status: int = 200, headers=None, gzipped: bool = False
):
    """`body`: encoded JSON bytes (gzipped ones when `gzipped`), or a JSON-ready
    value to encode. TensorBoard gzips the rest when the client accepts it, and
    unzips a gzipped body for a client that does not."""
    if not isinstance(body, bytes):
        body = jsonable.dumps(body)
    encoding = "gzip" if gzipped else None
    return http_util.Respond(
        request, body, JSON, code=status, headers=headers, content_encoding=encoding
    )


def error_response(request: wrappers.Request, status: int, message: str, headers=None):
    return json_response(request, {"error": message}, status=status, headers=headers)


def json_route(handler: Callable[..., Any]) -> Callable:
    """Wraps `handler(self, request) -> Response` as a WSGI app method."""

    @functools.wraps(handler)
    # werkzeug's stub types `application` for plain functions; on a method it
    # works the same (it finds the request in the last argument).
    @wrappers.Request.application  # type: ignore[arg-type]
    def route(self, request: wrappers.Request):
        if request.method not in _ALLOWED_METHODS:
            return error_response(
                request,
                405,
                f"method {request.method} is not allowed; use GET",
                headers=[("Allow", ", ".join(_ALLOWED_METHODS))],
            )
        try:
            return handler(self, request)
        except BadRequestError as error:
            return error_response(request, 400, str(error))
        except UnknownRunError as error:
            # The name comes from the URL and may be 16 kB: echo it recognisably, not whole.
            name = error.args[0] if error.args else ""
            return error_response(
                request, 404, f"no run named {shorten(repr(name))} in this logdir"
            )
        except AnalysisError as error:
            return error_response(request, 500, str(error))
        except tb_errors.PublicError as error:
            # TensorBoard's own errors (e.g. an unknown experiment) carry a
            # status and a message meant for users.
            return error_response(request, error.http_code, str(error), headers=error.headers)
        except Exception as error:  # noqa: BLE001 - the last line of defence
            _log.exception(f"route {request.path}", error)
            return error_response(request, 500, _INTERNAL_ERROR)

    return route
