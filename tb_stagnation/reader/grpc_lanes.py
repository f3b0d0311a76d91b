"""A data-server stub whose calls made at once travel over separate connections.

TensorBoard's Rust data server does not disable Nagle's algorithm on its
sockets. When two answers share one connection, the second waits until the
client acknowledges the first, and Linux delays that acknowledgement ~40 ms.
A listing is three calls made side by side (`provider_reader._all_at_once`):
over one connection, about every other listing paid those 40 ms. Measured
2026-12-04, 200 ms apart: the three calls over one connection took over
20 ms 14 times in 30, over three connections once (median 2.5 ms); and
`/report` asked alone took 45 ms where TensorBoard's scalars route, one
call, took 4.9 ms, then 4.2-4.6 ms with this module.

So each call takes a connection that no other call is using, the first
being the stub it was given (TensorBoard's own), and opens another only when
all are busy, up to `max_lanes`; past that, calls share them as before.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import grpc
from tensorboard.data import grpc_provider

# The reader makes at most three calls at once per request, and the tab asks
# for three answers together.
DEFAULT_MAX_LANES = 8
# Without it, channels to one address with equal options share one
# connection (gRPC's global subchannel pool), which is what must be avoided.
OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)

# Opens a channel to the data server with these options added to its own.
OpenChannel = Callable[..., grpc.Channel]


class StubLanes:
    """Stands for a `TensorBoardDataProvider` stub: `lanes.ListScalars(request)`.

    `open_channel(*options)` opens a channel to the same server as `stub`'s,
    with `options` added; without it every call uses `stub`, as TensorBoard
    does.
    """

    def __init__(
        self,
        stub: Any,
        open_channel: OpenChannel | None = None,
        max_lanes: int = DEFAULT_MAX_LANES,
    ) -> None:
        self._open_channel = open_channel
        self._max_lanes = max_lanes if open_channel is not None else 1
        self._lock = threading.Lock()
        self._lanes = [stub]
        self._idle = [stub]
        self._channels: list[grpc.Channel] = []
        self._count = 1  # lanes made or being made
        self._shared = itertools.cycle(range(max_lanes))

    @property
    def lane_count(self) -> int:
        """How many connections the calls so far have needed."""
        return self._count

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            stub, owned = self._take()
            try:
                return getattr(stub, method)(*args, **kwargs)
            finally:
                if owned:
                    self._give_back(stub)

        return call

    def close(self) -> None:
        """Closes the channels it opened (the given stub's is the caller's)."""
        with self._lock:
            channels, self._channels = self._channels, []
            first = self._lanes[0]
            self._lanes = [first]
            self._idle = [stub for stub in self._idle if stub is first]
            self._count = 1
        for channel in channels:
            channel.close()

    def _take(self) -> tuple[Any, bool]:
        """An idle lane (owned until given back), else a new one, else a
        busy one shared."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            if self._count >= self._max_lanes:
                return self._lanes[next(self._shared) % len(self._lanes)], False
            self._count += 1  # reserved, so that racing calls stay within the bound
        assert self._open_channel is not None  # max_lanes is 1 without it
        try:
            channel = self._open_channel(OWN_CONNECTION)
        except Exception:  # noqa: BLE001 - a connection more is a speed-up, not a need
            with self._lock:
                self._count -= 1
                self._max_lanes = self._count  # not tried again
            return self._lanes[0], False
        stub = grpc_provider.make_stub(channel)
        with self._lock:
            self._channels.append(channel)
            self._lanes.append(stub)
        return stub, True

    def _give_back(self, stub: Any) -> None:
        with self._lock:
            if any(lane is stub for lane in self._lanes):
                self._idle.append(stub)
