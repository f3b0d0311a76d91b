"""Every command and code block of README.md, run as a reader would run it.

Each fenced block in the README is preceded by `<!-- readme-test: KIND -->`:
- `demo`: README's first command; it runs here (serving on a free port) and
  its gallery must come out with the finding each run was built to show;
- `ci`: README's test command, which is `.ci/run` itself: CI runs it;
- `install`: asked of pip's resolver in this venv (which has tensorflow-cpu):
  it must add our package and nothing else, above all no second TensorFlow;
- `python`: run in a fresh folder;
- `shell`: run from the repository root after the demo;
- `output`: the printed output of the `shell` block before it (numbers may
  differ in their digits from machine to machine; everything else must match).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tensorboard_process import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEMO_LOGDIR = ROOT / "demo" / "logs"
BIN = Path(sys.executable).parent
KINDS = {"demo", "ci", "install", "python", "shell", "output"}

_BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\n```[a-z]*\n(.*?)```", re.S)


def readme_blocks() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in _BLOCK.findall(README.read_text(encoding="utf-8"))]


def blocks_of(kind: str) -> list[str]:
    return [body for block_kind, body in readme_blocks() if block_kind == kind]


def env_with_venv() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def test_every_fenced_block_is_tested():
    text = README.read_text(encoding="utf-8")
    fences = len(re.findall(r"^```[a-z]*\n", text, re.M)) // 2  # opening and closing
    blocks = readme_blocks()
    assert len(blocks) == fences, "a fenced block in README.md has no readme-test marker"
    assert {kind for kind, _ in blocks} <= KINDS
    assert [body.strip() for body in blocks_of("demo")] == ["bash demo/run.sh"]
    assert [body.strip() for body in blocks_of("ci")] == ["bash .ci/run"]
    assert (ROOT / ".ci" / "run").exists()


def layered_venv(path: Path) -> Path:
    """A new venv that sees this one's packages through a .pth file: what a
    user with TensorFlow already installed has. The README's command installs
    into it, so it never replaces the package this test session imports."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (site,) = [p for p in (path / "lib").glob(f"{version}/site-packages")]
    ours = [p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)]
    (site / "test-venv-packages.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """README's first command, serving on a free port; stopped once it serves the tab."""
    (command,) = [body.strip() for body in blocks_of("demo")]
    port = free_port()
    env = env_with_venv()
    venv = layered_venv(tmp_path_factory.mktemp("demo") / "venv")
    env.update(TB_STAGNATION_VENV=str(venv), PORT=str(port))
    process = subprocess.Popen(
        command,
        shell=True,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    listing = None
    try:
        deadline = time.monotonic() + 900
        for line in process.stdout:
            lines.append(line)
            if f"http://localhost:{port}/#stagnation" in line:
                break
            assert time.monotonic() < deadline, "".join(lines[-30:])
        else:
            pytest.fail("the demo ended before serving:\n" + "".join(lines[-40:]))
        while listing is None and time.monotonic() < deadline:
            try:
                url = f"http://localhost:{port}/data/plugins_listing"
                with urllib.request.urlopen(url, timeout=5) as answer:
                    listing = answer.read().decode()
            except OSError:
                time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        process.stdout.close()
    return "".join(lines), listing


def test_demo_trains_the_gallery_and_serves_the_tab(demo_run):
    output, listing = demo_run
    assert listing is not None and '"stagnation"' in listing
    assert re.search(r"trained the gallery in \d+ s", output), output[-2000:]
    print(output)  # the per-run training times, for the log


def test_demo_gallery_shows_the_finding_each_run_was_built_for(demo_run):
    import tb_stagnation

    expected = {
        run_dir.name: (run_dir / ".demo_complete").read_text().strip()
        for run_dir in DEMO_LOGDIR.iterdir()
        if (run_dir / ".demo_complete").exists()
    }
    assert len(expected) >= 13
    report = tb_stagnation.analyze(str(DEMO_LOGDIR))
    got = {}
    for run in report["runs"]:
        top = run["findings"][0]["code"] if run["findings"] else None
        got[run["run"]] = "healthy" if run["healthy"] else top
    assert got == expected


def test_install_block_keeps_the_tensorflow_a_user_has(tmp_path):
    # Run in this venv, which has tensorflow-cpu: pip's own resolver report
    # says what the README's command would add. Only our package, no second
    # TensorFlow (tensorflow-cpu must satisfy whatever we need).
    (command,) = blocks_of("install")
    report = tmp_path / "pip-report.json"
    command = command.split("#")[0].strip().replace("pip install", f"{BIN / 'pip'} install", 1)
    subprocess.run(
        f"{command} --dry-run --quiet --report {report}",
        shell=True,
        cwd=ROOT,
        env=env_with_venv(),
        check=True,
        timeout=600,
        capture_output=True,
    )
    import json

    would_install = [
        item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]
    ]
    assert would_install == ["tb-stagnation"], would_install


def test_python_blocks_run(tmp_path):
    for number, code in enumerate(blocks_of("python")):
        script = tmp_path / f"block_{number}.py"
        script.write_text(code, encoding="utf-8")
        subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env_with_venv(),
            check=True,
            timeout=600,
            capture_output=True,
        )
    # The fit block wrote our data and Keras's side by side.
    assert (tmp_path / "logs" / "run1" / "stagnation").is_dir()
    assert (tmp_path / "logs" / "run1" / "train").is_dir()


def _normalise(text: str) -> str:
    return re.sub(r"\d+(\.\d+)?(e-?\d+)?", "#", text).strip()


def test_shell_blocks_run_and_print_what_readme_shows(demo_run):
    blocks = readme_blocks()
    for index, (kind, body) in enumerate(blocks):
        if kind != "shell":
            continue
        result = subprocess.run(
            body,
            shell=True,
            cwd=ROOT,
            env=env_with_venv(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode in (0, 1), result.stderr  # 1: stalls found, as documented
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if following and following[0] == "output":
            assert _normalise(result.stdout) == _normalise(following[1])


def test_findings_table_lists_exactly_the_codes_the_analysis_emits():
    """README's findings table is the user's catalogue: a new cause must appear
    there, a removed one must leave it, and titles are what the tab shows."""
    from tb_stagnation.analysis.findings import CODES

    text = README.read_text(encoding="utf-8")
    section = text.split("## Findings: what they mean and how to fix them", 1)[1]
    section = section.split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert len(documented) == len(set(documented)), "a code is listed twice"
    assert set(documented) == set(CODES), (
        f"missing from README: {sorted(set(CODES) - set(documented))}; "
        f"not a code: {sorted(set(documented) - set(CODES))}"
    )
