"""`static_files.read_static`: only plain files of the static folder."""

import os

import pytest

from tb_stagnation.plugin.static_files import STATIC_DIR, read_static


@pytest.fixture
def static_dir(tmp_path):
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "index.js").write_text("export function render() {}")
    (folder / "style.css").write_text("body {}")
    (folder / "logo.png").write_bytes(b"\x89PNG")
    (folder / "notes.py").write_text("secret")
    (tmp_path / "secret.js").write_text("outside")
    os.symlink(tmp_path / "secret.js", folder / "escape.js")
    os.symlink(folder / "index.js", folder / "alias.js")
    return folder


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("index.js", "text/javascript"),
        ("style.css", "text/css"),
        ("logo.png", "image/png"),
        ("alias.js", "text/javascript"),
    ],  # a symlink that stays inside is fine
)
def test_serves_known_types(static_dir, name, content_type):
    found = read_static(name, static_dir)
    assert found is not None and found.content_type == content_type
    assert found.content == (static_dir / name).read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "escape.js",
        "../secret.js",
        "..",
        "",
        "/etc/passwd",
        "sub/index.js",
        ".index.js",
        "notes.py",
        "missing.js",
        "index.js\x00.png",
        "..\\secret.js",
        "INDEX.JS",
        "x" * 300 + ".js",
    ],
)
def test_refuses_everything_else(static_dir, name):
    assert read_static(name, static_dir) is None


def test_the_package_static_folder_is_the_frontends():
    assert STATIC_DIR.name == "static" and STATIC_DIR.parent.name == "tb_stagnation"
