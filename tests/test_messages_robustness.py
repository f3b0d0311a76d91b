"""Messages a user can act on (issue 14, item 7), each through the real code path.

- `tb-stagnation report gs://...` that cannot load says why, or what it waits
  for while it waits, and gives up after --timeout (60 s by default), not 300 s;
- every error of the plugin's routes is JSON, also a URL too long for
  TensorBoard's HTTP server and a malformed percent-encoding (`?run=%`);
- messages show kilobyte run names shortened, saying how much was cut;
- `tb-stagnation report ... | head` exits like any pipeline member cut short;
- a two-output model's summed loss is compared with the sum of its heads'
  baselines, or with none, never with one head's.

Real data server, real `tensorboard` process, real training; nothing mocked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse

import numpy as np
import pytest
from plugin_support import ServedPlugin, write_callback_run
from tensorboard_process import TensorBoardProcess

from tb_stagnation.analysis.series import fmt_num
from tb_stagnation.cli import DEFAULT_TIMEOUT_S, EXIT_BROKEN_PIPE, EXIT_USAGE, main
from tb_stagnation.names import shorten
from tb_stagnation.reader.logdir import _data_server_binary

CLI = [sys.executable, "-c", "import sys; from tb_stagnation.cli import main; sys.exit(main())"]
REMOTE = "gs://unreachable/logs"
PLUGIN = "/data/plugin/stagnation"

needs_data_server = pytest.mark.skipif(
    _data_server_binary() is None, reason="tensorboard-data-server is not installed"
)


def _cli_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    # No gcloud profile of the machine's user: the data server's GCS auth finds nothing.
    env.update(HOME=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3", **extra)
    return env


def _run_cli(args: list[str], env: dict, timeout: float = 60) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        CLI + args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    write_callback_run(str(root / "run_a"), epochs=4)
    write_callback_run(str(root / "run_b"), epochs=4, stall_from=1)
    return root


# --- a remote logdir that does not load -------------------------------------


@needs_data_server
def test_remote_logdir_that_cannot_load_says_why_at_once(tmp_path):
    # Issue 14: silent for 301 s, then "did not finish loading in time". The
    # data server's loading thread dies at once (no credentials, no network);
    # its reason is what the user needs.
    code, out, err, took = _run_cli(["report", REMOTE], _cli_env(tmp_path))
    assert code == EXIT_USAGE and out == ""
    *waiting, error = err.strip().splitlines()
    # On a busy machine the failure may come after the first progress line.
    assert all(line.startswith(f"tb-stagnation: loading {REMOTE}: ") for line in waiting), err
    assert len(waiting) <= 1, err
    assert error.startswith("tb-stagnation: error: ")
    assert REMOTE in error and "data server failed to load" in error
    assert "credentials" in error and len(error) < 600
    assert "Traceback" not in err and took < 30


@needs_data_server
def test_a_hanging_load_says_what_it_waits_for_and_gives_up_at_timeout(tmp_path):
    # GCS credentials in a FIFO nobody writes: the real data server blocks
    # reading them, as it blocks on a network that never answers.
    credentials = tmp_path / "credentials.json"
    os.mkfifo(credentials)
    env = _cli_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=str(credentials))
    code, out, err, took = _run_cli(["report", REMOTE, "--timeout", "11"], env)
    assert code == EXIT_USAGE and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == (
        f"tb-stagnation: loading {REMOTE}: waiting for TensorBoard's data server to read it "
        "(gives up after 11 s; --timeout SECONDS changes that)"
    ), err
    assert lines[1] == f"tb-stagnation: still loading {REMOTE}: 10 s of at most 11 s", err
    assert lines[2] == (
        f"tb-stagnation: error: TensorBoard's data server did not finish loading {REMOTE} "
        "within 11 s (--timeout SECONDS waits longer)"
    ), err
    assert len(lines) == 3 and 11 <= took < 40


def test_default_timeout_is_a_minute_and_timeout_is_validated(tmp_path, capsys):
    assert DEFAULT_TIMEOUT_S == 60
    assert main(["report", "--help"]) == 0
    assert "(default 60)" in " ".join(capsys.readouterr().out.split())
    for bad in ("0", "-5", "nan", "soon"):
        assert main(["report", str(tmp_path), "--timeout", bad]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--timeout" in err and "above 0" in err


def test_a_quick_load_prints_nothing_on_stderr(logdir, tmp_path):
    code, out, err, _ = _run_cli(["report", str(logdir)], _cli_env(tmp_path))
    assert code in (0, 1) and "run_a" in out
    assert "loading" not in err


# --- broken pipe --------------------------------------------------------------


@pytest.mark.parametrize("reader", ["true", "head -c 0"])
def test_stdout_closed_by_the_reader_exits_141_quietly(logdir, tmp_path, reader):
    # `true` exits before the report is written: every write then fails with
    # EPIPE, as for `| head -1` on a long report.
    command = " ".join(map(_quote, CLI)) + f" report {_quote(str(logdir))} | {reader}"
    script = command + '; echo "status=${PIPESTATUS[0]}" >&2'
    done = subprocess.run(
        ["bash", "-c", script],
        env=_cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stderr.strip() == f"status={EXIT_BROKEN_PIPE}", done.stderr


def test_stdout_closed_before_the_write_in_a_subprocess(logdir, tmp_path):
    process = subprocess.Popen(
        [*CLI, "report", str(logdir), "--json"],
        env=_cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_BROKEN_PIPE
    assert err == b"", err  # no traceback, no "Exception ignored ... BrokenPipeError"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# --- long run names in messages ------------------------------------------------


def _long_run(root) -> str:
    # 3.6 kB of nested folders (each below the 255-byte limit of a name).
    parts = [f"{i:02d}_" + "x" * 197 for i in range(18)]
    name = "/".join(parts)
    write_callback_run(str(root / name), epochs=3)
    return name


def test_no_run_matches_shows_long_names_shortened(tmp_path, capsys):
    name = _long_run(tmp_path)
    assert len(name) > 3600
    pattern = "^" + "y" * 3000 + "$"
    assert main(["report", str(tmp_path), "--run", pattern]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 400, len(err)
    assert "no run matches --run" in err
    assert name[:20] in err and name[-10:] in err  # still recognisable
    assert f"({len(name) - 36} characters cut)" in err
    assert "--run '^yyy" in err and f"yyy$' ({len(pattern) + 2 - 56} characters cut)" in err


def test_shorten_keeps_short_text_and_says_what_it_cut():
    assert shorten("short") == "short"
    text = "a" * 50 + "b" * 50
    cut = shorten(text)
    assert cut == "a" * 38 + "..." + "b" * 18 + " (44 characters cut)"
    assert len(cut) <= 80


def test_unknown_long_run_gets_a_short_404(tmp_path):
    served = ServedPlugin(str(tmp_path))
    name = "n" * 10_000
    error = served.get_json("/report?run=" + name, status=404)["error"]
    assert error.startswith("no run named 'nnnn") and "n' (" in error and "characters cut" in error
    assert len(error) < 200


# --- JSON errors: malformed percent-encoding, URLs too long --------------------


@pytest.mark.parametrize("query", ["run=%", "run=%zz", "run=abc%2", "run=%%41", "run=a&x=%g0"])
def test_malformed_percent_encoding_is_a_400(tmp_path, query):
    served = ServedPlugin(str(tmp_path))
    for route in ("/report", "/series"):
        error = served.get_json(f"{route}?{query}", status=400)["error"]
        assert "malformed query string" in error and "%" in error


def test_one_megabyte_query_through_the_plugin_app_is_a_json_400(tmp_path):
    served = ServedPlugin(str(tmp_path))
    error = served.get_json("/report?run=" + "a" * 1_000_000, status=400)["error"]
    assert "too long" in error and len(error) < 200


def _raw_get(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, dict, bytes]:
    """One request on a raw socket: urllib cannot send a 1 MB request line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        request = method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered after 64 kB and closed; the answer is read below
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    write_callback_run(str(root / "run_a"), epochs=3)
    server = TensorBoardProcess(root, load_fast=False, path_prefix="/foo")
    try:
        server.wait_until(
            lambda: _raw_get(server.port, f"/foo{PLUGIN}/runs".encode())[0] == 200,
            "the server",
        )
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("route", ["/report", "/series", "/runs", "/index.js"])
def test_url_too_long_for_tensorboard_is_a_json_error(tensorboard, route):
    target = f"/foo{PLUGIN}{route}?run=".encode() + b"a" * 1_000_000
    status, headers, body = _raw_get(tensorboard.port, target)
    assert status == 414
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert "URL too long" in error and "65536" in error
    assert int(headers["content-length"]) == len(body)


def test_other_urls_keep_tensorboards_own_answers(tensorboard):
    status, headers, _ = _raw_get(tensorboard.port, b"/foo/data/logdir?x=" + b"a" * 70_000)
    assert status == 414 and headers["content-type"].startswith("text/html")
    status, headers, body = _raw_get(tensorboard.port, b"/foo/data/plugins_listing")
    assert status == 200 and headers["content-type"] == "application/json"


@pytest.mark.parametrize("query", ["run=%", "run=%zz"])
def test_malformed_percent_encoding_through_tensorboard_is_a_400(tensorboard, query):
    status, headers, body = _raw_get(tensorboard.port, f"/foo{PLUGIN}/report?{query}".encode())
    assert status == 400 and headers["content-type"] == "application/json"
    assert "malformed query string" in json.loads(body)["error"]


def test_run_names_near_the_limits_get_json_answers(tensorboard):
    # 16384 characters (the plugin's limit) arrive when they fit TensorBoard's
    # request line; one more is the plugin's 400, a name that needs more than
    # 64 kB escaped is the server's 414, each as JSON.
    for name, expected in (("a" * 16_384, 404), ("a" * 16_385, 400), ("é" * 16_384, 414)):
        query = urllib.parse.quote(name, safe="")
        status, headers, body = _raw_get(
            tensorboard.port, f"/foo{PLUGIN}/report?run={query}".encode()
        )
        assert status == expected and headers["content-type"] == "application/json"
        assert len(json.loads(body)["error"]) < 300


# --- a two-output model -----------------------------------------------------------


def _train_two_output_model(log_dir: str, learn: bool, loss_weights=None) -> dict:
    """A real fit of a tiny model with a 3-class head and a binary head; its
    history and the 3-class labels."""
    import keras

    from tb_stagnation import StagnationCallback

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 8)).astype("float32")
    if learn:
        y_cls = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
        y_bin = (x[:, 2] > 0).astype("float32")
        rate, hidden = 0.01, 16
    else:  # labels independent of the inputs: both heads can only reach their baselines
        y_cls = rng.integers(0, 3, size=x.shape[0]).astype("int32")
        y_bin = rng.integers(0, 2, size=x.shape[0]).astype("float32")
        rate, hidden = 0.001, 8
    inputs = keras.Input((8,))
    features = keras.layers.Dense(hidden, activation="relu")(inputs)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(features)
    binary = keras.layers.Dense(1, activation="sigmoid", name="bin")(features)
    model = keras.Model(inputs, [cls, binary])
    model.compile(
        keras.optimizers.Adam(rate),
        loss=["sparse_categorical_crossentropy", "binary_crossentropy"],
        loss_weights=loss_weights,
        metrics=[["accuracy"], ["accuracy"]],
    )
    history = model.fit(
        x,
        [y_cls, y_bin],
        epochs=10,
        batch_size=64,
        verbose=0,
        callbacks=[
            StagnationCallback(log_dir=log_dir),
            keras.callbacks.TensorBoard(log_dir=log_dir),
        ],
    )
    return {"history": history.history, "y_cls": y_cls}


def _entropy(labels: np.ndarray) -> float:
    shares = np.bincount(labels) / labels.size
    return float(-(shares * np.log(shares)).sum())


@pytest.fixture(scope="module")
def two_output_logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_output")
    runs = {
        "random_labels": _train_two_output_model(str(root / "random_labels"), learn=False),
        "learns": _train_two_output_model(str(root / "learns"), learn=True),
        "weighted": _train_two_output_model(
            str(root / "weighted"), learn=False, loss_weights=[1.0, 0.5]
        ),
    }
    # A plain-Keras user's copy of one: Keras's folders only.
    shutil.copytree(root / "random_labels" / "train", root / "keras_random_labels" / "train")
    runs["keras_random_labels"] = runs["random_labels"]
    return root, runs


def _reports(root, capsys) -> dict:
    assert main(["report", str(root), "--json"]) in (0, 1)
    return {r["run"]: r for r in json.loads(capsys.readouterr().out)["runs"]}


def test_two_output_loss_is_compared_with_the_sum_of_the_heads_baselines(two_output_logdir, capsys):
    root, runs = two_output_logdir
    reports = _reports(root, capsys)
    for name in ("random_labels", "learns"):
        history, report = runs[name]["history"], reports[name]
        # Keras logs the loss as the sum of the heads' losses...
        assert np.allclose(
            history["loss"], np.add(history["cls_loss"], history["bin_loss"]), rtol=1e-3
        )
        # ...so its baseline is the sum of theirs: the cls head's from its labels,
        # the binary head's uniform guess ln 2 (no label statistics of it).
        expected = _entropy(runs[name]["y_cls"]) + math.log(2)
        assert report["baselines"]["constant_loss"] == pytest.approx(expected, rel=1e-4)
        assert report["baselines"]["majority_rate"] is None  # one accuracy per head
        note = next(n for n in report["notes"] if "outputs with a loss" in n)
        assert "(cls, bin)" in note and f"= {fmt_num(expected)}" in note
    stalled = reports["random_labels"]
    assert stalled["stalled_epochs"] == list(range(10))
    evidence = " ".join(f["evidence"] for f in stalled["findings"])
    # Issue 14: "a constant predictor scores 1.1" (the cls head alone) beside a loss of 1.9.
    assert f"a constant predictor scores {fmt_num(stalled['baselines']['constant_loss'])}" in (
        evidence
    )
    assert reports["learns"]["healthy"] and not reports["learns"]["stalled_epochs"]


def test_two_output_loss_without_a_known_sum_is_not_compared(two_output_logdir, capsys):
    root, _ = two_output_logdir
    reports = _reports(root, capsys)
    # loss_weights: the logged total is no plain sum of the logged head losses.
    weighted = reports["weighted"]
    assert weighted["baselines"]["constant_loss"] is None
    assert any("loss_weights" in note for note in weighted["notes"])
    for finding in weighted["findings"]:
        assert "constant predictor scores" not in finding["evidence"], finding


def test_two_output_plain_keras_run_sums_the_heads_uniform_guesses(two_output_logdir, capsys):
    # The model config Keras logs lists both heads with their losses: with no
    # label statistics, each head's baseline is its uniform guess (ln 3 + ln 2).
    root, _ = two_output_logdir
    plain = _reports(root, capsys)["keras_random_labels"]
    expected = math.log(3) + math.log(2)
    assert plain["baselines"]["constant_loss"] == pytest.approx(expected, rel=1e-4)
    assert plain["stalled_epochs"], plain
    assert "loss_output_mismatch" not in [f["code"] for f in plain["findings"]]


def test_two_output_text_report_shows_the_summed_baseline(two_output_logdir, capsys):
    root, runs = two_output_logdir
    main(["report", str(root), "--run", "^random_labels$"])
    out = capsys.readouterr().out
    expected = _entropy(runs["random_labels"]["y_cls"]) + math.log(2)
    assert "random_labels: stalled in epochs 0-9" in out
    assert f"baselines: constant-predictor loss {expected:.4g}" in out
