"""A real `tensorboard --logdir` in a subprocess, for the tests that need one.

Its output goes to a file: a pipe nobody reads fills up and blocks the server.
The command is this venv's own TensorBoard, whatever PATH says.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TensorBoardProcess:
    """`tensorboard --logdir LOGDIR` on a free loopback port until `stop()`."""

    def __init__(
        self,
        logdir,
        load_fast: bool = False,
        path_prefix: str = "",
        log_path=None,
        reload_interval: int = 1,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path_prefix}/"
        if log_path is None:
            handle, log_path = tempfile.mkstemp(prefix="tensorboard_", suffix=".log")
            os.close(handle)
        self.log_path = str(log_path)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                f"--logdir={logdir}",
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--load_fast={'true' if load_fast else 'false'}",
                f"--reload_interval={reload_interval}",
                *([f"--path_prefix={path_prefix}"] if path_prefix else []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
        """Poll `predicate` (its OSError/AssertionError/ValueError count as
        "not yet") until it holds; fail with the server's log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"tensorboard exited: {self.log()[-3000:]}"
            try:
                if predicate():
                    return
            except (OSError, AssertionError, ValueError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; log: {self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
