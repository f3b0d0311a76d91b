"""Every private TensorBoard attribute the package reads or replaces.

Checked against TensorBoard 2.16.2 and 2.21.0 (the two venvs CI runs). Never
imports TensorFlow: the tab and the CLI load this without it.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

# The module `tensor_size_module` returns, and the function in it.
_MULTIPLEXER_PROVIDER = "tensorboard.backend.event_processing.data_provider"
TENSOR_SIZE = "_tensor_size"
_GRPC_PROVIDER = "tensorboard.data.grpc_provider"
_NOTF = "tensorboard.compat.notf"
# What TensorBoard's own channel to its data server accepts.
_DATA_SERVER_MAX_ANSWER = 256 * 1024 * 1024
_notf_lock = threading.Lock()


def request_handler_class() -> type[Any] | None:
    """`tensorboard.program._WSGIRequestHandler`: the HTTP handler of `tensorboard`.

    Why: a request line over 64 KiB (or an oversized header) is refused by its
    `send_error` with an HTML page before any plugin sees it; for our routes
    plugin/server_errors.py makes that page JSON, as http_api.md promises.
    Checked: TensorBoard 2.16.2 and 2.21.0.
    Without it: None; those few refusals stay HTML.
    """
    try:
        from tensorboard import program
    except ImportError:
        return None
    handler = getattr(program, "_WSGIRequestHandler", None)
    return handler if isinstance(handler, type) else None


def tensor_size_module() -> types.ModuleType | None:
    """The loaded `tensorboard.backend.event_processing.data_provider`, which has
    `_tensor_size(tensor_proto)`, or None.

    Why: the Python loader's `read_blob_sequences` makes one reference per
    element a tensor's shape claims, through this module function; a file
    claiming 10^12 elements would exhaust memory. reader/decode_bounds.py
    wraps it to check the claim first.
    Checked: TensorBoard 2.16.2 and 2.21.0.
    Without it: None; blob sequences are not bounded (scalars and tensors
    still are, through the public `tensor_util.make_ndarray`).
    Only a module somebody already imported is returned: importing it here
    could pull in TensorFlow, which the CLI avoids.
    """
    module = sys.modules.get(_MULTIPLEXER_PROVIDER)
    if module is None or not callable(getattr(module, TENSOR_SIZE, None)):
        return None
    return module


def grpc_provider_parts(provider: Any) -> tuple[str, Any] | None:
    """`GrpcDataProvider._addr` and `._stub`: the address and service stub of
    TensorBoard's gRPC data provider (`--load_fast=true`), or None for any
    other provider.

    Why: the plugin reads our runs through `reader/grpc_series.py`, a subclass
    of that provider that reads a tag's points into arrays; it is made on the
    same stub, so it talks to the same data server over the same channel.
    Checked: TensorBoard 2.16.2 and 2.21.0.
    Without it: None; the plugin reads through TensorBoard's own points (a
    cold `/runs` of 100 runs takes about twice as long).
    Only TensorBoard's own class is taken, not a subclass that may answer
    differently, and only when TensorBoard already imported it.
    """
    module = sys.modules.get(_GRPC_PROVIDER)
    if module is None or type(provider) is not getattr(module, "GrpcDataProvider", None):
        return None
    address, stub = getattr(provider, "_addr", None), getattr(provider, "_stub", None)
    if not isinstance(address, str) or stub is None:
        return None
    return address, stub


def data_server_channel_opener(flags: Any, address: str) -> Callable[..., Any] | None:
    """`open_channel(*extra_options)`, which opens a gRPC channel to
    TensorBoard's data server at `address` as TensorBoard opens its own
    (`server_ingester._make_stub`: the credentials and options of
    `flags.grpc_creds_type`, answers up to 256 MiB), with `extra_options`
    added. None when the flags do not say how.

    Why: reader/grpc_lanes.py gives calls made at once a connection each,
    which TensorBoard's one channel cannot (the data server's answers wait
    ~40 ms for each other on one connection).
    Checked: TensorBoard 2.16.2 and 2.21.0 (`--grpc_creds_type`, a
    `grpc_util.ChannelCredsType` with `channel_config()`).
    Without it: None; the plugin's calls share TensorBoard's channel.
    """
    channel_config = getattr(getattr(flags, "grpc_creds_type", None), "channel_config", None)
    if not callable(channel_config):
        return None

    def open_channel(*extra_options: tuple[str, Any]) -> Any:
        import grpc  # only this loader needs it

        creds, options = channel_config()
        options = [*options, ("grpc.max_receive_message_length", _DATA_SERVER_MAX_ANSWER)]
        return grpc.secure_channel(address, creds, options=[*options, *extra_options])

    return open_channel


def multiplexer_provider_parts(provider: Any) -> tuple[Any, str] | None:
    """`MultiplexerDataProvider._multiplexer` and `._logdir`: the event
    multiplexer and logdir of TensorBoard's Python-loader provider
    (`--load_fast=false`), or None for any other provider.

    Why: that provider answers any call but a read of one run's one tag by
    first collecting the summary metadata of every run (`_index`): at 1,000
    runs ~3.5 ms a call, and one run's listing makes three calls.
    plugin/run_scope.py makes the same provider class on a view of the
    multiplexer that holds only one run's TensorBoard runs.
    Checked: TensorBoard 2.16.2 and 2.21.0.
    Without it: None; one run's provider narrows the calls' run filters
    instead (same answers, the metadata of every run still collected).
    Only TensorBoard's own class is taken, and only when already imported.
    """
    module = sys.modules.get(_MULTIPLEXER_PROVIDER)
    if module is None or type(provider) is not getattr(module, "MultiplexerDataProvider", None):
        return None
    multiplexer, logdir = (
        getattr(provider, "_multiplexer", None),
        getattr(provider, "_logdir", None),
    )
    if not callable(getattr(multiplexer, "GetAccumulator", None)) or not isinstance(logdir, str):
        return None
    return multiplexer, logdir


def event_file_handle(writer: Any) -> Any:
    """`EventFileWriter._general_file_writer`: the open file under TensorBoard's writer.

    Why: after a failed write, the writer raises on its final flush before it
    closes the file; the summary writer closes the file itself then.
    Checked: TensorBoard 2.16.2 and 2.21.0. Without it: None (the file is
    closed when the process ends).
    """
    return getattr(writer, "_general_file_writer", None)


def resolve_tensorflow_stub() -> None:
    """Make `tensorboard.compat.tf` the pure-Python stub, without leaving any
    `sys.modules` entry behind.

    Why: TensorBoard's compat layer imports TensorFlow (2-3 s, 500 MB) when it
    can, the first time anything touches `tensorboard.compat.tf`; a registered
    `tensorboard.compat.notf` module is TensorBoard's own switch for its stub,
    which reads local event files just as well. The switch is read once, when
    the lazy module resolves, so it is registered only for that resolution and
    removed again: nothing outlives this call but TensorBoard's own memo.
    Checked: TensorBoard 2.16.2 and 2.21.0 (`compat/__init__.py`).
    Without it (a TensorBoard that resolves differently): TensorFlow may be
    imported, which is slower but correct. A `tf` already resolved (for
    instance to TensorFlow, imported by the user) is left as it is.
    """
    with _notf_lock:
        added = _NOTF not in sys.modules
        if added:
            sys.modules[_NOTF] = types.ModuleType("notf")
        try:
            compat = importlib.import_module("tensorboard.compat")
            # Any attribute lookup resolves the lazy module once, memoized.
            getattr(compat.tf, "__version__", None)
        except Exception:  # noqa: BLE001 - resolving is an optimisation only
            pass
        finally:
            if added:
                sys.modules.pop(_NOTF, None)
