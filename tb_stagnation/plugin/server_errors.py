"""JSON errors for the requests TensorBoard's HTTP server refuses before routing.

TensorBoard serves through Werkzeug's request handler, which inherits
`http.server`: a request line over 65 536 bytes (a 1 MB `?run=`), an
oversized header or a garbled HTTP version is answered by `send_error` with
an HTML page, before any plugin sees the request. http_api.md promises JSON
errors on every route of this plugin, and the tab's fetch code parses them,
so for requests aimed at this plugin's routes that page becomes
`{"error": ...}`. Every other URL keeps TensorBoard's own answer.
"""

from __future__ import annotations

import json
from typing import Any

from tb_stagnation.compat.tensorboard import request_handler_class
from tb_stagnation.plugin.query import MAX_RUN_CHARS
from tb_stagnation.summary import metadata

JSON = "application/json"
# Where the plugin's routes live under any --path_prefix or /experiment/<id>.
_ROUTE_MARKER = f"/data/plugin/{metadata.PLUGIN_NAME}/".encode("ascii")
# http.server reads at most this much of a request line (http/server.py).
MAX_REQUEST_LINE_BYTES = 65_536
_TOO_LONG = 414
_INSTALLED = "_tb_stagnation_json_errors"


def targets_plugin(raw_request_line: Any) -> bool:
    """Whether a (possibly truncated) request line asks for one of our routes."""
    if not isinstance(raw_request_line, (bytes, bytearray)):
        return False
    parts = bytes(raw_request_line).split(b" ", 2)
    if len(parts) < 2:
        return False
    path = parts[1].split(b"?", 1)[0]
    return _ROUTE_MARKER in path


def error_text(code: int, message: str | None) -> str:
    """The one line the JSON error carries."""
    if code == _TOO_LONG:
        return (
            f"URL too long: TensorBoard's HTTP server reads at most {MAX_REQUEST_LINE_BYTES} "
            f"bytes of a request line, and a run name may have at most {MAX_RUN_CHARS} characters"
        )
    return " ".join(str(message or f"HTTP error {code}").split())


def install_json_server_errors() -> None:
    """Make TensorBoard's request handler answer JSON errors for our routes.

    Idempotent; a TensorBoard without the handler class is left as it is.
    """
    handler = request_handler_class()
    if handler is None:
        return
    original = handler.send_error
    if getattr(original, _INSTALLED, False):
        return

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        if not targets_plugin(getattr(self, "raw_requestline", None)):
            return original(self, code, message, explain)
        if message is None:
            message = self.responses.get(code, ("",))[0]
        body = json.dumps({"error": error_text(code, message)}, ensure_ascii=True)
        # send_error %-formats the template and keeps its own headers, logging
        # and HEAD handling; a template without placeholders is the body as is.
        self.error_message_format = body.replace("%", "%%")
        self.error_content_type = JSON
        return original(self, code, message, explain)

    setattr(send_error, _INSTALLED, True)
    handler.send_error = send_error
