"""The two data providers TensorBoard can serve a logdir with, for the route benchmarks.

`python_provider` is what `tensorboard --load_fast=false` builds (with our
loader's flags); `rust_provider` what `--load_fast=true` builds, TensorBoard's
own `GrpcDataProvider`, on the Rust data server the CLI starts
(tb_stagnation/reader/logdir.py). The plugin remakes it as its own subclass
on the same stub (plugin/stagnation_plugin.py, `_with_column_reads`).
"""

from __future__ import annotations

from contextlib import contextmanager

# The flags `tensorboard --logdir .` parses; the plugin opens its data-server
# connections as they say. (Both benchmarks put tests/ on the path.)
from plugin_support import tensorboard_flags
from tensorboard.backend.event_processing import (
    data_ingester,
    data_provider,
    plugin_event_multiplexer,
)
from tensorboard.data import grpc_provider


@contextmanager
def python_provider(logdir: str):
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance={**data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE, "stagnation": 0},
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    yield data_provider.MultiplexerDataProvider(multiplexer, logdir)


@contextmanager
def rust_provider(logdir: str):
    """TensorBoard's provider on one channel of its own, opened as
    `tensorboard --load_fast=true` opens it (server_ingester.py)."""
    from tb_stagnation.compat import tensorboard as compat_tensorboard
    from tb_stagnation.reader import logdir as reader_logdir

    binary = reader_logdir._data_server_binary()
    if binary is None:
        raise RuntimeError("tensorboard-data-server is not installed")
    with reader_logdir._data_server_provider(binary, logdir) as ours:
        open_channel = compat_tensorboard.data_server_channel_opener(
            tensorboard_flags(), ours._addr
        )
        if open_channel is None:
            raise RuntimeError("this TensorBoard has no --grpc_creds_type")
        channel = open_channel()
        try:
            yield grpc_provider.GrpcDataProvider(ours._addr, grpc_provider.make_stub(channel))
        finally:
            channel.close()
