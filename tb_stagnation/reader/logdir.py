"""Opens a logdir outside TensorBoard (CLI, notebooks) as a data provider.

TensorBoard's own loaders do the reading, as they would under `tensorboard
--logdir`: its Rust data server when installed (it parses event files natively
and fast: the CLI must analyse 100 runs in seconds), else its Python
`EventMultiplexer`.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from tb_stagnation.analysis.run_data import RunData
from tb_stagnation.reader import run_names
from tb_stagnation.reader.errors import LogdirError
from tb_stagnation.reader.local_walk import (
    LocalWalk,
    UnreadableFolder,
    display_name,
    walk_logdir,
)
from tb_stagnation.reader.provider_reader import ProviderReader, RunListing
from tb_stagnation.summary import metadata

# Generous: the Rust server loads ~1M events/s; this bounds a hung start only.
_DATA_SERVER_LOAD_TIMEOUT_S = 300.0
_LOAD_FINISHED_MARKER = b"Finished load cycle"
# The server's loading thread can die (no network or credentials for gs://)
# while the server lives on: without this, a wait for the full timeout.
_PANIC_MARKER = b"panicked at"
_PANIC_MESSAGE = re.compile(r"panicked at '(.*)', [^\s,]+:\d+:\d+\s*$")
# Runs read per provider call by `iter_runs`: batched reads stay fast, and a
# logdir of 1,000 runs never has all their arrays in memory at once.
READ_BATCH = 128


@dataclass(frozen=True)
class LoadWarning:
    """An event file TensorBoard's loader could not read to its end."""

    run: str  # the TensorBoard run (the file's folder relative to the logdir)
    path: str
    reason: str  # what the loader said, in a few words
    text: str = ""  # the whole message, when it is not about one file's records

    @property
    def message(self) -> str:
        if self.text:
            return self.text
        return (
            f"TensorBoard stopped reading {self.path} at {self.reason}: what the file holds "
            "after that point is missing."
        )


class LogdirSource:
    """The logical runs of one opened logdir.

    `load_warnings` lists the event files the loader could not read to the end
    (a corrupt record), then the folders and files of a local logdir that
    could not be read at all (`unreadable_folders`); each is also a note of
    the run it belongs to. Only the Rust data server reports corrupt records:
    the Python loader cannot tell one from a record still being written (it
    reports the files it raises on, and the data server's crash if it had to
    stand in for it).
    """

    def __init__(
        self,
        reader: ProviderReader,
        load_warnings: Iterable[LoadWarning] = (),
        unreadable_folders: Iterable[UnreadableFolder] = (),
        logdir: str = "",
    ) -> None:
        self._reader = reader
        self._listings: dict[str, RunListing] | None = None
        self.unreadable_folders = list(unreadable_folders)
        self.load_warnings: list[LoadWarning | UnreadableFolder] = [
            *load_warnings,
            *self.unreadable_folders,
        ]
        self._logdir = logdir

    def no_runs_reason(self) -> str:
        """The one line for a logdir without runs, naming what could not be read."""
        text = f"{self._logdir}: no runs found"
        problems = [
            f"could not read {folder.path} ({folder.reason}): the runs may be there"
            for folder in self.unreadable_folders
        ]
        problems += [
            warning.message.rstrip(".")
            for warning in self.load_warnings
            if not isinstance(warning, UnreadableFolder)
        ]
        if not problems:
            return text + " (no StagnationCallback or Keras TensorBoard logs)"
        more = len(problems) - 1
        return f"{text}; {problems[0]}" + (f" (and {more} more)" if more else "")

    def listings(self) -> dict[str, RunListing]:
        if self._listings is None:
            self._listings = self._reader.list_runs()
        return self._listings

    def list_runs(self) -> list[str]:
        """Logical run names, sorted."""
        return sorted(self.listings())

    def read_runs(self, names: list[str]) -> list[RunData]:
        listings = self.listings()
        runs = self._reader.read_runs([listings[name] for name in names])
        for run in runs if self.load_warnings else ():
            members = set(listings[run.name].members.values())
            run.notes.extend(
                w.message
                for w in self.load_warnings
                if w.run in members or _logical_run(w.run) == run.name
            )
        return runs

    def iter_runs(self, names: list[str], batch: int = READ_BATCH) -> Iterator[RunData]:
        """The runs `names`, in order, read `batch` at a time: one batch of
        arrays in memory at once, however many runs the logdir holds."""
        for start in range(0, len(names), batch):
            yield from self.read_runs(names[start : start + batch])


class DataServerCrashedError(LogdirError):
    """TensorBoard's data server died while loading (a signal, e.g. the abort of
    a failed allocation: a record header claiming a terabyte does that)."""


@contextmanager
def open_logdir(
    logdir: str,
    use_data_server: bool | None = None,
    *,
    load_timeout: float | None = None,
    progress: Callable[[float], None] | None = None,
    loss_tag: str | None = None,
) -> Iterator[LogdirSource]:
    """Yields a LogdirSource; raises LogdirError with a one-line reason.

    Args:
        logdir: a local folder, or any path TensorBoard reads (gs://, s3://...).
        use_data_server: True/False to force a loader; None picks the Rust data
            server when it is installed.
        load_timeout: seconds to wait for the data server's load (default 300).
        progress: called with the seconds waited so far, about twice a second,
            while the data server loads.
        loss_tag: the training loss's tag in runs written by other tools
            (default: found by name, reader/other_tools.py).
    """
    _check_local_logdir(logdir)
    binary = _data_server_binary() if use_data_server in (None, True) else None
    if use_data_server and binary is None:
        raise LogdirError("TensorBoard's data server (tensorboard-data-server) is not installed")
    walk = None if _is_remote(logdir) else walk_logdir(logdir)
    unreadable = walk.unreadable if walk is not None else []
    with ExitStack() as stack:
        source = None
        crash: list[LoadWarning] = []
        if binary is not None:
            try:
                provider = stack.enter_context(
                    _data_server_provider(binary, logdir, load_timeout, progress)
                )
                source = LogdirSource(
                    ProviderReader(provider, loss_tag=loss_tag),
                    provider.load_warnings,
                    unreadable,
                    logdir,
                )
            except DataServerCrashedError as error:
                if use_data_server:
                    raise
                # One hostile file must not cost every run: TensorBoard's Python
                # loader reads the logdir instead, and the crash is a warning.
                text = f"{error}; TensorBoard's Python loader read it instead."
                crash.append(LoadWarning(run="", path=logdir, reason="", text=text))
        if source is None:
            links = stack.enter_context(tempfile.TemporaryDirectory(prefix="tb_stagnation_runs_"))
            provider, stopped = _python_provider(logdir, walk, links)
            source = LogdirSource(
                ProviderReader(provider, loss_tag=loss_tag), crash + stopped, unreadable, logdir
            )
        yield source


def _logical_run(tensorboard_run: str) -> str | None:
    """The logical run a TensorBoard run (a folder) belongs to, if any."""
    split = run_names.split_run_name(tensorboard_run)
    return split[0] if split is not None else None


def _is_remote(logdir: str) -> bool:
    return "://" in logdir


def _check_local_logdir(logdir: str) -> None:
    if _is_remote(logdir):
        return
    if not os.path.exists(logdir):
        raise LogdirError(f"{logdir}: no such directory")
    if not os.path.isdir(logdir):
        raise LogdirError(f"{logdir}: not a directory")
    if not os.access(logdir, os.R_OK | os.X_OK):
        raise LogdirError(f"{logdir}: permission denied")


def _data_server_binary():
    try:
        from tensorboard.data import server_ingester

        return server_ingester.get_server_binary()
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return None


@contextmanager
def _data_server_provider(binary, logdir: str, load_timeout=None, progress=None):
    import grpc
    from tensorboard.data import grpc_provider

    from tb_stagnation.reader import grpc_series

    with tempfile.TemporaryDirectory(prefix="tb_stagnation_") as tmp:
        port_file = os.path.join(tmp, "port")
        error_file = os.path.join(tmp, "error")
        process = subprocess.Popen(
            [
                binary.path,
                f"--logdir={os.path.expanduser(logdir)}",
                "--reload=once",
                f"--samples-per-plugin={metadata.PLUGIN_NAME}=all,scalars=all",
                "--port=0",
                f"--port-file={port_file}",
                f"--error-file={error_file}",
                "--die-after-stdin",
                "--verbose",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        stdin, stderr = process.stdin, process.stderr
        assert stdin is not None and stderr is not None  # both are PIPEs, just above
        channel = provider = None
        try:
            load_warnings = _wait_for_load(process, error_file, logdir, load_timeout, progress)
            with open(port_file, encoding="ascii") as port_text:
                port = int(port_text.read().strip())
            address = f"localhost:{port}"

            def open_channel(*extra_options):
                options = [("grpc.max_receive_message_length", 1 << 30), *extra_options]
                return grpc.insecure_channel(address, options=options)

            channel = open_channel()
            provider = grpc_series.SeriesGrpcProvider(
                address, grpc_provider.make_stub(channel), open_channel
            )
            provider.load_warnings = load_warnings
            yield provider
        finally:
            if provider is not None:
                provider.close()
            if channel is not None:
                channel.close()
            stdin.close()  # --die-after-stdin: the server exits
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            stderr.close()


def _wait_for_load(
    process: subprocess.Popen, error_file: str, logdir: str, timeout=None, progress=None
) -> list[LoadWarning]:
    """Block until the server finished its one load cycle; the files it
    could not read to the end, from its log."""
    assert process.stderr is not None  # the caller starts the server with stderr=PIPE
    # Not select.select: it refuses a descriptor numbered 1024 or above, which
    # a process holding many files open (a notebook, a Python-loader
    # TensorBoard) can be given.
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        return _follow_load_log(process, selector, error_file, logdir, timeout, progress)


def _follow_load_log(
    process: subprocess.Popen,
    selector: selectors.BaseSelector,
    error_file: str,
    logdir: str,
    timeout,
    progress,
) -> list[LoadWarning]:
    """`_wait_for_load`, `selector` watching the server's stderr."""
    timeout = _DATA_SERVER_LOAD_TIMEOUT_S if timeout is None else timeout
    start = time.monotonic()
    deadline = start + timeout
    pending = b""
    panic: bytes | None = None
    warnings: list[LoadWarning] = []
    last_line = b""  # what a crashing server says last ("memory allocation of ... failed")
    stderr = process.stderr
    assert stderr is not None
    while time.monotonic() < deadline:
        if progress is not None:
            progress(time.monotonic() - start)
        if selector.select(0.5):
            chunk = os.read(stderr.fileno(), 65536)
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-65536:]
            for line in lines:
                if panic is not None:  # newer Rust prints the message on the next line
                    raise _load_failed(logdir, line)
                if line.startswith(b"thread '") and _PANIC_MARKER in line:
                    panic = line
                    match = _PANIC_MESSAGE.search(line.decode("utf-8", errors="replace"))
                    if match is not None:
                        raise _load_failed(logdir, match.group(1).encode("utf-8"))
                    continue
                warning = _load_warning(line, logdir)
                if warning is not None:
                    warnings.append(warning)
                if _LOAD_FINISHED_MARKER in line:
                    return warnings
                if line.strip():
                    last_line = line
            if _LOAD_FINISHED_MARKER in pending:
                return warnings
            if chunk:
                continue
        if process.poll() is not None:
            reason = ""
            if os.path.exists(error_file):
                with open(error_file, encoding="utf-8", errors="replace") as error_text:
                    reason = error_text.read().strip()
            if not reason and process.returncode < 0:
                said = " ".join((pending or last_line).decode("utf-8", errors="replace").split())
                raise DataServerCrashedError(
                    f"TensorBoard's data server crashed (signal {-process.returncode}) while "
                    f"loading {logdir}" + (f": {said[:300]}" if said else "")
                )
            raise LogdirError(reason or f"TensorBoard's data server exited ({process.returncode})")
    if panic is not None:
        raise _load_failed(logdir, panic)
    raise LogdirError(
        f"TensorBoard's data server did not finish loading {logdir} within {timeout:g} s"
    )


def _load_failed(logdir: str, detail: bytes) -> LogdirError:
    text = " ".join(detail.decode("utf-8", errors="replace").split())
    text = text if len(text) <= 300 else text[:297] + "..."
    hint = " (check the network access and credentials it needs)" if _is_remote(logdir) else ""
    return LogdirError(f"TensorBoard's data server failed to load {logdir}{hint}: {text}")


# The data server's log line for a file it stops reading (rustboard_core/src/run.rs).
_READ_ERROR = re.compile(r"WARN\s+rustboard_core::run\] Read error in (.+?): ([A-Za-z]+\(.*)$")
_REASONS = (
    ("Crc", "a corrupt record (checksum mismatch)"),
    ("Truncat", "a cut-off record"),
    ("Decode", "a record that is not an event"),
)


def _load_warning(line: bytes, logdir: str) -> LoadWarning | None:
    match = _READ_ERROR.search(line.decode("utf-8", errors="replace").rstrip())
    if match is None:
        return None
    path, error = match.groups()
    reason = next((text for key, text in _REASONS if key in error), None)
    if reason is None:
        reason = "a read error (" + " ".join(error.split())[:200] + ")"
    run = os.path.relpath(os.path.dirname(path), os.path.expanduser(logdir)).replace(os.sep, "/")
    return LoadWarning(run=run, path=path, reason=reason)


def _python_provider(logdir: str, walk: LocalWalk | None = None, links: str | None = None):
    """TensorBoard's Python loader over `logdir`, and the runs it could not
    read to the end (LoadWarning).

    For a local logdir it reads the runs of `walk` (local_walk.py: what the
    data server would read) rather than walking the logdir itself: each run is
    a folder under `links` holding symlinks to its event files, so the loader
    never meets a FIFO, a symlink loop or a name that is not UTF-8. Each run
    is loaded on its own: a record whose header claims a terabyte makes the
    loader raise (MemoryError) for that run, which keeps what it read before.
    """
    if not _is_remote(logdir) and "tensorflow" not in sys.modules:
        # TensorBoard's compat layer imports TensorFlow (2-3 s, 500 MB) when it
        # can; its pure-Python stub reads local files just as well. A registered
        # `tensorboard.compat.notf` module is TensorBoard's own switch for that,
        # registered only while it is read (compat/tensorboard.py).
        from tb_stagnation.compat.tensorboard import resolve_tensorflow_stub

        resolve_tensorflow_stub()
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0, "scalars": 0},
        size_guidance={"tensors": 0, "scalars": 0},
    )
    stopped: list[LoadWarning] = []
    try:
        if walk is None or links is None:
            multiplexer.AddRunsFromDirectory(logdir)
            multiplexer.Reload()
        else:
            for number, (run, files) in enumerate(sorted(walk.runs.items())):
                folder, readable = _linked_run(os.path.join(links, str(number)), files)
                multiplexer.AddRun(folder, name=run)
                try:
                    multiplexer.GetAccumulator(run).Reload()
                except Exception:  # noqa: BLE001 - that run's files, not the others
                    stopped += _reload_without_failing_files(
                        multiplexer, run, files, readable, os.path.join(links, f"{number}.retry")
                    )
    except Exception as error:  # noqa: BLE001 - a filesystem error of any kind
        raise LogdirError(f"{logdir}: {error}") from None
    return data_provider.MultiplexerDataProvider(multiplexer, logdir), stopped


def _reload_without_failing_files(
    multiplexer, run: str, files: list[str], readable: list[str], folder: str
) -> list[LoadWarning]:
    """Run `run` loaded again without the files the Python loader raises on.

    Its loader reads a folder's files in turn and stops at the first that
    raises, which would lose the files after it too; the data server reads
    each file on its own. Each file is tried alone, and the run is loaded
    from the ones that load.
    """
    from tensorboard.backend.event_processing import event_file_loader

    kept, warnings = [], []
    for original, path in zip(files, readable):
        try:
            for _ in event_file_loader.EventFileLoader(path).Load():
                pass
        except Exception as error:  # noqa: BLE001 - whatever the file makes it raise
            detail = " ".join(f"{type(error).__name__} {error}".split())[:200]
            warnings.append(
                LoadWarning(
                    run=run,
                    path=display_name(original),
                    reason="",
                    text=(
                        f"TensorBoard's Python loader could not read {display_name(original)} "
                        f"({detail}): the file was skipped."
                    ),
                )
            )
            continue
        kept.append(original)
    if kept:
        # Replacing a run's folder is what AddRun is for here; its warning
        # about the "conflict" would only confuse the user.
        tb_logger = logging.getLogger("tensorboard")
        level = tb_logger.level
        tb_logger.setLevel(logging.ERROR)
        try:
            multiplexer.AddRun(_linked_run(folder, kept)[0], name=run)
        finally:
            tb_logger.setLevel(level)
        try:
            multiplexer.GetAccumulator(run).Reload()
        except Exception:  # noqa: BLE001 - keep what it read; the warnings say what failed
            pass
    return warnings


def _linked_run(folder: str, files: list[str]) -> tuple[str, list[str]]:
    """`folder` made to hold a symlink to each of `files`, in their order (the
    loader reads a folder's event files sorted by name), and the links; the
    run's own folder and files where symlinks cannot be made."""
    links = []
    try:
        os.mkdir(folder)
        for number, path in enumerate(files):
            link = os.path.join(folder, f"{number:08d}.{_EVENT_LINK_SUFFIX}")
            os.symlink(os.path.abspath(path), link)
            links.append(link)
    except OSError:
        return os.path.dirname(files[0]), list(files)
    return folder, links


# Names the Python loader takes for event files ("tfevents" in the name).
_EVENT_LINK_SUFFIX = "tfevents.linked"
