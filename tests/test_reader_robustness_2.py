"""Issue 14 ("Robustness II"), items 1, 5, 6 and the unreadable folder of 7.

Each case is a real logdir on disk read through TensorBoard's own loaders
(its Rust data server and its Python multiplexer), the installed
`tb-stagnation` command, `analyze()` and the plugin's routes inside
TensorBoard's WSGI app. Whatever could grow without bound (a hostile claim,
a hang) runs in a child with its address space capped and a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
import textwrap

import pytest
from hostile_events import (
    PEAK_RSS_LIMIT,
    ROUTES_SCRIPT,
    claiming_tensor,
    cli_child,
    hostile_event_file,
    python_child,
    write_file,
)
from plugin_support import ServedPlugin, write_callback_run
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

from tb_stagnation import cli
from tb_stagnation.analysis.api import run_report
from tb_stagnation.plugin.analyses import RunAnalyses
from tb_stagnation.reader.logdir import _data_server_binary, open_logdir
from tb_stagnation.reader.provider_reader import ProviderReader
from tb_stagnation.summary import tags

HAS_DATA_SERVER = _data_server_binary() is not None
LOADERS = [False, True] if HAS_DATA_SERVER else [False]


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB"


# -- 1. one crafted event file ---------------------------------------------------


def _crafted_logdir(root: str, claim: int) -> str:
    """A healthy run beside a 3-epoch run whose `layers/grad_norm` holds one
    float and a shape claiming `claim` elements (the issue's file)."""
    write_callback_run(os.path.join(root, "healthy"))
    data = hostile_event_file([(tags.LAYER_GRAD_NORM, claiming_tensor([claim]))])
    write_file(os.path.join(root, "crafted", tags.RUN_SUBDIR), data)
    return root


@pytest.mark.parametrize("claim", [2**28, 10**12])
def test_crafted_claim_cli_reports_the_healthy_run_within_bounded_memory(tmp_path, claim):
    root = _crafted_logdir(str(tmp_path), claim)
    result = cli_child("report", root, "--json")
    print(f"tb-stagnation report, claim {claim}: peak RSS {_mib(result.peak_rss)}")
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert result.peak_rss < PEAK_RSS_LIMIT
    runs = {run["run"]: run for run in json.loads(result.stdout)["runs"]}
    assert runs["healthy"]["healthy"] is True and runs["healthy"]["epochs"] == 6
    crafted = runs["crafted"]
    assert crafted["epochs"] == 3  # its loss is still read
    assert any(tags.LAYER_GRAD_NORM in note and "claim" in note for note in crafted["notes"])
    assert "Skipped tags" in result.stderr  # the CLI warns of what it skipped


ANALYZE_BOTH_LOADERS = textwrap.dedent(
    """
    import json, sys
    from tb_stagnation import analyze
    from tb_stagnation.analysis.api import run_report
    from tb_stagnation.reader.logdir import open_logdir
    out = {"analyze": analyze(sys.argv[1])["runs"]}
    with open_logdir(sys.argv[1], use_data_server=False) as source:
        out["python"] = [run_report(run) for run in source.iter_runs(source.list_runs())]
    print(json.dumps(out, default=str))
    """
)


@pytest.mark.parametrize("claim", [2**28, 10**12])
def test_crafted_claim_analyze_reports_every_run(tmp_path, claim):
    root = _crafted_logdir(str(tmp_path), claim)
    result = python_child(ANALYZE_BOTH_LOADERS, root)
    print(f"analyze(), claim {claim}: peak RSS {_mib(result.peak_rss)}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.peak_rss < PEAK_RSS_LIMIT
    for loader, reports in json.loads(result.stdout).items():
        runs = {report["run"]: report for report in reports}
        assert set(runs) == {"healthy", "crafted"}, loader
        assert runs["healthy"]["healthy"] is True, loader
        assert runs["crafted"]["epochs"] == 3, loader
        assert any(tags.LAYER_GRAD_NORM in note for note in runs["crafted"]["notes"]), loader


@pytest.mark.parametrize("claim", [2**28, 10**12])
def test_crafted_claim_plugin_routes_answer_every_run(tmp_path, claim):
    root = _crafted_logdir(str(tmp_path), claim)
    result = python_child(ROUTES_SCRIPT, root)
    print(f"plugin routes, claim {claim}: peak RSS {_mib(result.peak_rss)}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.peak_rss < PEAK_RSS_LIMIT
    answer = json.loads(result.stdout)
    status, body = answer["runs"]
    assert status == 200, body
    rows = {row["run"]: row for row in body["runs"]}
    assert rows["healthy"]["status"] == "healthy"
    assert rows["crafted"]["epochs"] == 3 and rows["crafted"]["status"] != "error"
    for key, (code, content_type, _) in answer["routes"].items():
        assert code == 200 and content_type == "application/json", key
    report = answer["routes"]["/report crafted"][2]
    assert any(tags.LAYER_GRAD_NORM in note for note in report["notes"])


class _FailsForOneRun:
    """TensorBoard's real provider, whose reads fail for one run the way an
    allocation that nothing bounded would (fault injection, not a stand-in:
    every other call is the real provider's)."""

    def __init__(self, provider, failing_run: str) -> None:
        self._provider = provider
        self._failing = failing_run

    def __getattr__(self, name):
        method = getattr(self._provider, name)
        if not name.startswith("read_"):
            return method

        def read(*args, run_tag_filter=None, **kwargs):
            runs = getattr(run_tag_filter, "runs", None)
            if runs is None or self._failing in runs:
                raise MemoryError("Unable to allocate 12.0 GiB for an array")
            return method(*args, run_tag_filter=run_tag_filter, **kwargs)

        return read


def test_an_exception_while_reading_one_run_stays_with_that_run(tmp_path):
    root = str(tmp_path)
    write_callback_run(os.path.join(root, "healthy"))
    write_callback_run(os.path.join(root, "broken"))
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={"stagnation": 0, "scalars": 0}
    )
    multiplexer.AddRunsFromDirectory(root)
    multiplexer.Reload()
    provider = _FailsForOneRun(
        data_provider.MultiplexerDataProvider(multiplexer, root), "broken/stagnation"
    )
    reader = ProviderReader(provider)
    runs = {run.name: run for run in reader.read_runs(reader.list_runs().values())}
    assert runs["healthy"].error is None and runs["healthy"].num_epochs == 6
    broken = runs["broken"]
    assert broken.num_epochs == 0 and "MemoryError" in broken.error
    assert broken.error in broken.notes

    # analyze() and the CLI: an `error` line, not healthy; the text says why.
    reports = [run_report(runs[name]) for name in ("broken", "healthy")]
    assert reports[0]["error"] == broken.error and reports[0]["healthy"] is False
    assert reports[1]["healthy"] is True and "error" not in reports[1]
    text = cli.render_text(reports, width=100)
    assert "broken" in text and "MemoryError" in text and "1 unreadable" in text

    # /runs: the row of that run says `error`, the other is analysed.
    rows = {
        row["run"]: row
        for row in RunAnalyses(run_report).runs(ProviderReader(provider), "")["runs"]
    }
    assert rows["broken"]["status"] == "error" and "MemoryError" in rows["broken"]["error"]
    assert rows["healthy"]["status"] == "healthy"


# -- 5. run names with a backslash -----------------------------------------------


def _backslash_logdir(root: str) -> None:
    write_callback_run(os.path.join(root, "back\\slash"))
    # Event files right inside a folder named `bs\stagnation`: on Linux that
    # is one folder, not a run `bs` with a `stagnation` member.
    folder = os.path.join(root, "bs\\stagnation")
    write_callback_run(os.path.join(root, "tmp"))
    os.rename(os.path.join(root, "tmp", tags.RUN_SUBDIR), folder)
    os.rmdir(os.path.join(root, "tmp"))


@pytest.mark.skipif(os.sep == "\\", reason="a backslash separates folders on Windows")
@pytest.mark.parametrize("use_data_server", LOADERS)
def test_backslash_run_names_with_both_loaders(tmp_path, use_data_server):
    _backslash_logdir(str(tmp_path))
    with open_logdir(str(tmp_path), use_data_server=use_data_server) as source:
        assert source.list_runs() == ["back\\slash"]
        (run,) = source.iter_runs(["back\\slash"])
    assert run.num_epochs == 6


@pytest.mark.skipif(os.sep == "\\", reason="a backslash separates folders on Windows")
def test_backslash_run_names_in_the_routes(tmp_path):
    _backslash_logdir(str(tmp_path))
    served = ServedPlugin(str(tmp_path))
    rows = served.get_json("/runs")["runs"]
    assert [row["run"] for row in rows] == ["back\\slash"]
    report = served.get_json("/report?run=back%5Cslash")
    assert report["run"] == "back\\slash" and report["epochs"] == 6
    series = served.get_json("/series?run=back%5Cslash")
    assert len(series["epochs"]) == 6
    served.get_json("/report?run=back%2Fslash", status=404)
    served.get_json("/report?run=bs", status=404)


@pytest.mark.skipif(os.sep == "\\", reason="a backslash separates folders on Windows")
def test_backslash_run_pattern_in_the_cli(tmp_path):
    _backslash_logdir(str(tmp_path))
    result = cli_child("report", str(tmp_path), "--run", "\\\\", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [run["run"] for run in json.loads(result.stdout)["runs"]] == ["back\\slash"]


# -- 6. the fallback reader --------------------------------------------------------


HAZARDS = ("fifo", "loops", "non_utf8", "all")


def _awkward_logdir(root: str, hazard: str) -> list[str]:
    """The runs the data server lists for the logdir of `hazard`."""
    write_callback_run(os.path.join(root, "healthy"))
    write_callback_run(os.path.join(root, "a", "deep"))
    names = ["a/deep", "healthy"]
    if hazard in ("fifo", "all"):
        # A FIFO named like an event file: opening it for reading blocks forever.
        fifo = os.path.join(root, "healthy", tags.RUN_SUBDIR, "events.out.tfevents.9.fifo.v1")
        os.mkfifo(fifo)
    if hazard in ("loops", "all"):
        os.symlink(".", os.path.join(root, "loop"))
        os.symlink("..", os.path.join(root, "a", "up"))
    if hazard in ("non_utf8", "all"):
        # A folder name that is not UTF-8 (legal on Linux).
        write_callback_run(os.path.join(root, "latin"))
        os.rename(os.path.join(root, "latin"), os.path.join(os.fsencode(root), b"caf\xe9"))
        names.insert(1, "caf\ufffd")
    return names


LIST_AND_READ = textwrap.dedent(
    """
    import json, sys
    from tb_stagnation.analysis.api import run_report
    from tb_stagnation.reader.logdir import open_logdir
    with open_logdir(sys.argv[1], use_data_server=sys.argv[2] == "1") as source:
        names = source.list_runs()
        reports = [run_report(run) for run in source.iter_runs(names)]
    print(json.dumps({"names": names, "epochs": [r["epochs"] for r in reports]}))
    """
)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("hazard", HAZARDS)
def test_fallback_reader_survives_fifo_symlink_loops_and_non_utf8_names(tmp_path, hazard):
    names = _awkward_logdir(str(tmp_path), hazard)
    # A hang is the failure: the child is killed after the timeout.
    result = python_child(LIST_AND_READ, str(tmp_path), "0", timeout=60)
    assert result.returncode == 0, (result.returncode, result.seconds, result.stderr[-2000:])
    fallback = json.loads(result.stdout)
    assert fallback["names"] == names
    assert fallback["epochs"] == [6] * len(names)
    if HAS_DATA_SERVER:  # the default reader sees the same
        default = python_child(LIST_AND_READ, str(tmp_path), "1", timeout=60)
        assert default.returncode == 0, default.stderr[-2000:]
        assert json.loads(default.stdout) == fallback


# -- 7. an unreadable folder ---------------------------------------------------------

# Runs the CLI as an unprivileged user. Under root a chmod 000 folder is
# readable, so the child drops to `nobody` first; this interpreter may live
# where `nobody` cannot exec it (/root), so everything the CLI imports later
# is imported, and its data server found, while still root.
AS_NOBODY = textwrap.dedent(
    """
    import io, json, os, sys
    from tb_stagnation import cli
    from tb_stagnation.analysis import api, report
    from tb_stagnation.reader import logdir as logdir_module
    from tb_stagnation.reader.errors import LogdirError
    warm, target = sys.argv[1], sys.argv[2]
    for use_data_server in (False, None):
        with logdir_module.open_logdir(warm, use_data_server=use_data_server) as source:
            list(source.iter_runs(source.list_runs()))
    cli.main(["report", warm])  # the CLI's own lazy imports
    if os.geteuid() == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        except OSError as error:
            print(json.dumps({"skip": f"cannot drop root privileges: {error}"}))
            sys.exit(0)
    out = {"readable": os.access(sys.argv[3], os.R_OK)}
    mixed = sys.argv[4]
    for key, argv in (
        ("cli", ["report", target]), ("cli_python", None), ("mixed", ["report", mixed])
    ):
        err = io.StringIO()
        sys.stderr, sys.stdout = err, io.StringIO()
        if argv is None:
            try:
                api.analyze(target)
                out[key] = [0, "analyze() returned"]
            except LogdirError as error:
                out[key] = [2, str(error)]
        else:
            out[key] = [cli.main(argv), err.getvalue()]
        sys.stderr, sys.stdout = sys.__stderr__, sys.__stdout__
    for use_data_server in (False, None):
        with logdir_module.open_logdir(target, use_data_server=use_data_server) as source:
            out[f"reason_{use_data_server}"] = source.no_runs_reason()
    print(json.dumps(out))
    """
)


def test_an_unreadable_stagnation_folder_is_named_with_its_reason(tmp_path):
    # Where `nobody` can reach: pytest's tmp_path lives in a 0700 folder.
    base = tempfile.mkdtemp(prefix="tb_stagnation_perm_")
    try:
        os.chmod(base, 0o755)
        warm, target, mixed = (os.path.join(base, name) for name in ("warm", "logs", "mixed"))
        write_callback_run(os.path.join(warm, "healthy"))
        write_callback_run(os.path.join(target, "r"))
        write_callback_run(os.path.join(mixed, "healthy"))
        write_callback_run(os.path.join(mixed, "r"))
        for folder, _, _ in os.walk(base):
            os.chmod(folder, 0o755)
        locked = os.path.join(target, "r", tags.RUN_SUBDIR)
        locked_beside = os.path.join(mixed, "r", tags.RUN_SUBDIR)
        os.chmod(locked, 0)
        os.chmod(locked_beside, 0)
        result = python_child(AS_NOBODY, warm, target, locked, mixed, timeout=180)
        assert result.returncode == 0, result.stderr[-3000:]
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        if "skip" in answer:
            pytest.skip(answer["skip"])
        assert answer["readable"] is False, "the folder must be unreadable to this user"
        code, stderr = answer["cli"]
        assert code == 2
        assert locked in stderr and "Permission denied" in stderr, stderr
        code, message = answer["cli_python"]
        assert code == 2 and locked in message and "Permission denied" in message, message
        for key in ("reason_False", "reason_None"):
            assert locked in answer[key] and "Permission denied" in answer[key], answer
        # Beside a readable run: that run is reported, the folder named in a warning.
        code, stderr = answer["mixed"]
        assert code == 0 and locked_beside in stderr and "Permission denied" in stderr, stderr
    finally:
        for folder, _, _ in os.walk(base):
            os.chmod(folder, stat.S_IRWXU)
        shutil.rmtree(base, ignore_errors=True)


def test_an_unreadable_folder_beside_readable_runs_is_a_warning(tmp_path):
    """Runs that can be read are reported; the folder that cannot is named.
    Under root the test above covers this as `nobody`."""
    if os.geteuid() == 0:
        pytest.skip("root reads any folder; the test above drops to nobody for this case")
    write_callback_run(os.path.join(tmp_path, "healthy"))
    write_callback_run(os.path.join(tmp_path, "r"))
    locked = os.path.join(tmp_path, "r", tags.RUN_SUBDIR)
    os.chmod(locked, 0)
    try:
        result = cli_child("report", str(tmp_path))
    finally:
        os.chmod(locked, stat.S_IRWXU)
    assert result.returncode == 0, result.stderr
    assert locked in result.stderr and "Permission denied" in result.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q", "-s"]))
