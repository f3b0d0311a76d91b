"""`tb-stagnation report`: table, --json, --run, exit codes, error lines.

Logdirs are written with `SummaryWriter` (and TensorBoard's EventFileWriter
for plain-Keras runs), so these tests need no TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from analysis_helpers import card
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tb_stagnation import __version__
from tb_stagnation.cli import main, render_text
from tb_stagnation.summary import tags
from tb_stagnation.summary.writer import SummaryWriter

COUNTS = [196.0, 170.0, 146.0]
H3 = -sum(c / 512 * math.log(c / 512) for c in COUNTS)


def write_callback_run(log_dir, loss, acc, counts=COUNTS, model_card=None, scalars=None):
    writer = SummaryWriter(os.path.join(str(log_dir), tags.RUN_SUBDIR))
    writer.write_model_card(0, model_card or card())
    for epoch, (value, accuracy) in enumerate(zip(loss, acc)):
        data = {tags.logs_tag("loss"): value, tags.logs_tag("accuracy"): accuracy}
        data[tags.LEARNING_RATE] = 0.001
        data.update({tag: series[epoch] for tag, series in (scalars or {}).items()})
        writer.write_step(epoch, scalars=data, class_counts=counts)
    writer.close()


def write_keras_run(log_dir, loss, lr):
    writer = EventFileWriter(os.path.join(str(log_dir), tags.KERAS_TRAIN_SUBDIR))
    for epoch, (value, rate) in enumerate(zip(loss, lr)):
        summary = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag="epoch_loss", simple_value=value),
                summary_pb2.Summary.Value(tag="epoch_learning_rate", simple_value=rate),
            ]
        )
        writer.add_event(event_pb2.Event(step=epoch, wall_time=1.0e9 + epoch, summary=summary))
    writer.close()


HEALTHY_LOSS = [1.1, 0.86, 0.69, 0.56, 0.46, 0.38, 0.33, 0.28]
HEALTHY_ACC = [0.37, 0.67, 0.80, 0.85, 0.9, 0.92, 0.94, 0.95]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_callback_run(root / "good", HEALTHY_LOSS, HEALTHY_ACC)
    write_callback_run(root / "stuck", [H3 * 1.001] * 8, [0.383] * 8)
    write_callback_run(
        root / "nan",
        [1.1, 0.9, float("nan"), float("nan"), float("nan"), float("nan")],
        [0.4, 0.5, 0.33, 0.33, 0.33, 0.33],
    )
    write_keras_run(root / "plain", [1.069] * 8, [1e-7] * 8)
    return str(root)


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def no_nan(text):
    def reject(constant):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=reject)


def test_version():
    status, out, _ = run_cli("--version")
    assert status == 0 and out.strip() == f"tb-stagnation {__version__}"


def test_help_exits_zero():
    status, out, _ = run_cli("report", "--help")
    assert status == 0 and "--json" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "missing command"),
        (["report"], "LOGDIR"),
        (["frobnicate"], "invalid choice"),
        (["report", "/no/such/logdir"], "no such directory"),
        (["report", "LOGDIR", "--run", "(unclosed"], "invalid run pattern"),
        (["report", "LOGDIR", "--run", "^zzz$"], "no run matches"),
    ],
)
def test_usage_errors_exit_2_with_one_line(logdir, argv, message):
    argv = [logdir if arg == "LOGDIR" else arg for arg in argv]
    status, out, err = run_cli(*argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_not_a_directory_and_empty_logdir(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    status, _, err = run_cli("report", str(afile))
    assert status == 2 and "not a directory" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run_cli("report", str(empty))
    assert status == 2 and "no runs found" in err


def test_text_report(logdir):
    status, out, err = run_cli("report", logdir)
    assert status == 1, err
    lines = out.splitlines()
    assert lines[0].split() == ["RUN", "SOURCE", "EPOCHS", "STATUS", "STALLED", "TOP", "FINDING"]
    rows = {line.split()[0]: line.split() for line in lines[1:5]}
    assert rows["good"][3] == "healthy" and rows["good"][4] == "-"
    assert rows["stuck"][3] == "stalled" and rows["stuck"][4] == "0-7"
    assert rows["plain"][1] == "keras" and rows["plain"][4] == "0-7"
    assert "learning_rate_too_small" in rows["plain"][5]
    assert "nan" in rows and rows["nan"][3] == "stalled"
    assert "stuck: stalled in epochs 0-7 (plateau)" in out
    assert "evidence:" in out and "fix:" in out and "note:" in out
    assert "good:" not in out  # healthy runs get no findings block
    assert lines[-1] == "4 runs: 1 healthy, 3 stalled."


def test_json_report(logdir):
    status, out, _ = run_cli("report", logdir, "--json")
    assert status == 1
    data = no_nan(out)
    assert data["schema"] == 1
    runs = {run["run"]: run for run in data["runs"]}
    assert sorted(runs) == ["good", "nan", "plain", "stuck"]
    assert runs["good"]["healthy"] and runs["good"]["source"] == "callback"
    assert runs["stuck"]["stalled_epochs"] == list(range(8))
    assert runs["plain"]["source"] == "keras"
    assert runs["nan"]["stall_windows"][-1]["kind"] == "divergence"
    for run in data["runs"]:
        for finding in run["findings"]:
            assert set(finding) >= {"code", "severity", "confidence", "epochs", "layers",
                                    "evidence", "fix"}  # fmt: skip


def test_run_filter_and_exit_zero_when_healthy(logdir):
    status, out, _ = run_cli("report", logdir, "--run", "^go", "--json")
    assert status == 0
    assert [run["run"] for run in no_nan(out)["runs"]] == ["good"]
    status, out, _ = run_cli("report", logdir, "--run", "oo|ck")  # search, not fullmatch
    assert status == 1 and "good" in out and "stuck" in out and "plain" not in out


def test_truncated_event_file_gives_a_report(tmp_path):
    write_callback_run(tmp_path / "cut", [H3] * 6, [0.38] * 6)
    folder = tmp_path / "cut" / tags.RUN_SUBDIR
    (path,) = list(folder.iterdir())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 37])
    status, out, err = run_cli("report", str(tmp_path), "--json")
    assert status in (0, 1), err
    (run,) = no_nan(out)["runs"]
    assert run["run"] == "cut" and run["epochs"] >= 4


def test_hostile_run_names_are_printed_safely(tmp_path):
    write_callback_run(tmp_path / "tab\there", [H3] * 4, [0.38] * 4)
    write_callback_run(tmp_path / "ünï", HEALTHY_LOSS, HEALTHY_ACC)
    status, out, _ = run_cli("report", str(tmp_path))
    assert status == 1
    assert "tab\\there" in out and "\t" not in out and "ünï" in out


def test_render_text_handles_empty_and_no_cause_reports():
    text = render_text(
        [
            {
                "run": "e",
                "source": "callback",
                "epochs": 0,
                "healthy": True,
                "stalled_epochs": [],
                "findings": [],
                "stall_windows": [],
                "notes": [],
                "baselines": {"constant_loss": None, "majority_rate": None, "loss_kind": None},
            },
            {
                "run": "s",
                "source": "keras",
                "epochs": 5,
                "healthy": False,
                "stalled_epochs": [2, 3, 4],
                "findings": [],
                "stall_windows": [{"start": 2, "end": 4, "kind": "plateau"}],
                "notes": [],
                "baselines": {"constant_loss": 0.69, "majority_rate": None, "loss_kind": None},
            },
        ],  # fmt: skip
        width=80,
    )
    assert "empty" in text and "no cause identified" in text
    assert text.rstrip().endswith("2 runs: 0 healthy, 1 stalled, 1 empty.")


def test_subprocess_exit_codes_and_no_tensorflow_import(logdir):
    code = (
        "import sys\n"
        "from tb_stagnation.cli import main\n"
        "status = main(['report', sys.argv[1], '--json'])\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, logdir], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert no_nan(done.stdout)["schema"] == 1
    missing = subprocess.run(
        [sys.executable, "-m", "tb_stagnation.cli", "report", "/no/such/dir"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == "tb-stagnation: error: /no/such/dir: no such directory"
    assert missing.stdout == ""


def test_nan_everywhere_run_json_is_valid(tmp_path):
    nan = float("nan")
    write_callback_run(
        tmp_path / "allnan",
        [nan] * 5,
        [nan] * 5,
        counts=[nan, nan, nan],
        scalars={tags.GRAD_GLOBAL_NORM: [nan] * 5, tags.INPUT_MAX_ABS: [np.inf] * 5},
    )
    status, out, _ = run_cli("report", str(tmp_path), "--json")
    assert status == 1
    (run,) = no_nan(out)["runs"]
    assert run["stalled_epochs"] == list(range(5))


def test_analyze_api_for_notebooks(logdir):
    import tb_stagnation
    from tb_stagnation.analysis.api import RunPatternError
    from tb_stagnation.reader.errors import LogdirError

    result = tb_stagnation.analyze(logdir)
    assert isinstance(result, tb_stagnation.Analysis)
    assert result.schema == 1 and result.warnings == []
    assert result.run_names == ["good", "nan", "plain", "stuck"]
    assert result["runs"] is result.runs  # the dict analyze() used to return, still readable
    assert result["schema"] == 1
    assert result.statuses() == {
        "good": "healthy",
        "nan": "stalled",
        "plain": "stalled",
        "stuck": "stalled",
    }
    assert [run["run"] for run in result["runs"]] == ["good", "nan", "plain", "stuck"]
    assert [run["run"] for run in tb_stagnation.analyze(logdir, "^st")["runs"]] == ["stuck"]
    assert tb_stagnation.analyze(logdir, "^zzz")["runs"] == []
    with pytest.raises(RunPatternError):
        tb_stagnation.analyze(logdir, "(")
    with pytest.raises(LogdirError):
        tb_stagnation.analyze("/no/such/logdir")


def test_empty_and_one_epoch_runs_get_a_report_with_a_note(tmp_path):
    writer = SummaryWriter(os.path.join(str(tmp_path / "card_only"), tags.RUN_SUBDIR))
    writer.write_model_card(0, card())
    writer.close()
    write_callback_run(tmp_path / "one", [0.9], [0.5])
    status, out, err = run_cli("report", str(tmp_path), "--json")
    assert status == 0, err
    runs = {run["run"]: run for run in no_nan(out)["runs"]}
    assert runs["one"]["epochs"] == 1 and any("one epoch" in n for n in runs["one"]["notes"])
    if "card_only" in runs:  # a run with a model card and no epoch yet
        assert runs["card_only"]["stalled_epochs"] == [] and runs["card_only"]["notes"]


def test_json_output_is_exactly_analyze_to_json(logdir):
    """One pipeline: `report --json` prints analyze()'s result, and the table is
    rendered from that same result."""
    import tb_stagnation
    from tb_stagnation import cli
    from tb_stagnation.analysis.presentation import render_text as presentation_render

    result = tb_stagnation.analyze(logdir)
    status, out, _ = run_cli("report", logdir, "--json")
    assert status == 1
    assert out == json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n"
    assert no_nan(out) == result.to_json()
    status, text, _ = run_cli("report", logdir)
    assert text == presentation_render(result.runs, cli._width())
    assert render_text is presentation_render


def test_analyze_keeps_why_a_logdir_has_no_runs(tmp_path):
    import tb_stagnation

    result = tb_stagnation.analyze(str(tmp_path))
    assert result.runs == [] and result.run_names == []
    assert len(result.warnings) == 1 and "no runs found" in result.warnings[0]
    assert result.to_json() == {"schema": 1, "runs": [], "warnings": result.warnings}


def test_load_warnings_are_kept_and_printed(tmp_path):
    import tb_stagnation

    write_callback_run(tmp_path / "cut", [H3] * 6, [0.38] * 6)
    folder = tmp_path / "cut" / tags.RUN_SUBDIR
    (path,) = list(folder.iterdir())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 37])
    result = tb_stagnation.analyze(str(tmp_path))
    status, out, err = run_cli("report", str(tmp_path), "--json")
    assert no_nan(out)["warnings"] == result.warnings
    for warning in result.warnings:
        assert warning in err
