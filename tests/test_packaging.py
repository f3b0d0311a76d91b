"""What `pip install` ships and what importing it costs."""

import json
import subprocess
import sys
from importlib import metadata as importlib_metadata


def run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def test_plugin_and_cli_import_paths_never_import_tensorflow():
    out = run_python(
        "import sys, json\n"
        "import tb_stagnation, tb_stagnation.cli, tb_stagnation.plugin.loader\n"
        "import tb_stagnation.plugin.stagnation_plugin, tb_stagnation.analysis.report\n"
        "from tb_stagnation.plugin.loader import StagnationLoader\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras'))))\n"
    )
    assert json.loads(out) == []


def test_entry_points_are_registered():
    plugins = importlib_metadata.entry_points(group="tensorboard_plugins")
    assert any(
        ep.name == "stagnation" and ep.value.startswith("tb_stagnation.plugin") for ep in plugins
    )
    scripts = importlib_metadata.entry_points(group="console_scripts")
    assert any(ep.name == "tb-stagnation" for ep in scripts)


def test_installed_package_ships_the_frontend_bundle_and_docs():
    files = {str(path) for path in importlib_metadata.files("tb-stagnation")}
    assert "tb_stagnation/static/index.js" in files
    assert "tb_stagnation/summary/FORMAT.md" in files
    assert "tb_stagnation/plugin/http_api.md" in files


def test_no_tensorflow_distribution_is_a_hard_requirement():
    # tensorflow, tensorflow-cpu and tf-nightly all give `import tensorflow`:
    # naming one would install a second copy beside a user's.
    requires = importlib_metadata.requires("tb-stagnation") or []
    hard = [r for r in requires if "extra ==" not in r]
    assert not [r for r in hard if r.lower().startswith(("tensorflow", "tf-nightly", "keras"))]
    assert any(r.startswith("tensorboard") for r in hard)


def test_public_names_resolve_lazily():
    out = run_python(
        "import sys, tb_stagnation\n"
        "before = 'tensorflow' in sys.modules\n"
        "analyze = tb_stagnation.analyze\n"
        "print(before, 'tensorflow' in sys.modules, callable(analyze))\n"
    )
    assert out.split() == ["False", "False", "True"]
