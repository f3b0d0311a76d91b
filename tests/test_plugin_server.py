"""A real `tensorboard --logdir` process with the installed plugin, both loaders.

This is what a user runs: the entry point is found, flags are fixed, the tab
is enabled, every route answers through the real HTTP server, and a run that
keeps being written shows its new epochs after TensorBoard's own reload.
"""

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request

import pytest
from plugin_support import HOSTILE_NAMES, train_keras_run, write_callback_run
from tensorboard_process import TensorBoardProcess

from tb_stagnation.summary import tags
from tb_stagnation.summary.writer import SummaryWriter

HOSTILE = f"nested/{HOSTILE_NAMES[0]}"


@pytest.fixture(scope="module")
def keras_logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    train_keras_run(str(root / "plain_keras"), epochs=2)
    write_callback_run(str(root / HOSTILE), epochs=3)
    return root


class Server(TensorBoardProcess):
    def __init__(self, logdir, load_fast: bool, path_prefix: str = "") -> None:
        super().__init__(logdir, load_fast=load_fast, path_prefix=path_prefix)
        self.base = self.url.rstrip("/")

    def get(self, path: str):
        """(status, headers, body bytes) of GET base + path."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def get_json(self, path: str, status: int = 200):
        code, headers, body = self.get(path)
        assert code == status, (path, code, body[:300])
        assert headers["Content-Type"] == "application/json"
        return json.loads(body)


def runs_of(server) -> dict:
    return {row["run"]: row for row in server.get_json("/data/plugin/stagnation/runs")["runs"]}


@pytest.mark.parametrize(
    ("load_fast", "path_prefix"),
    [(True, ""), (False, ""), (True, "/foo")],
    ids=["load_fast", "python_loader", "path_prefix"],
)
def test_real_tensorboard_serves_the_tab(tmp_path, keras_logdir, load_fast, path_prefix):
    logdir = tmp_path / "logdir"
    shutil.copytree(keras_logdir, logdir)
    live_dir = logdir / "live" / tags.RUN_SUBDIR
    writer = SummaryWriter(str(live_dir))
    writer.write_model_card(0, {"layers": [{"name": "dense"}]})

    def write_epochs(epochs):
        for epoch in epochs:
            writer.write_step(
                epoch,
                scalars={tags.logs_tag("loss"): 1.0},
                layer_stats={tags.LAYER_GRAD_NORM: [0.1]},
            )
        writer.flush()

    # More epochs than TensorBoard keeps of an unknown plugin's tags by default
    # (10): all of them showing proves the loader's samples_per_plugin took.
    write_epochs(range(12))
    server = Server(logdir, load_fast, path_prefix)
    try:
        server.wait_until(lambda: len(runs_of(server)) == 3, "the first load")
        plugins = server.get_json("/data/plugins_listing")
        assert plugins["stagnation"]["enabled"] is True
        assert plugins["stagnation"]["tab_name"] == "Stagnation"

        code, headers, body = server.get("/data/plugin/stagnation/index.js")
        assert code == 200 and headers["Content-Type"].startswith("text/javascript")
        assert server.get("/data/plugin/stagnation/static/index.js")[0] == 200
        assert server.get("/data/plugin/stagnation/static/..%2Floader.py")[0] == 404

        runs = runs_of(server)
        assert runs["plain_keras"]["source"] == "keras" and runs["plain_keras"]["epochs"] == 2
        assert runs[HOSTILE]["source"] == "callback"
        for run in runs:
            query = "?run=" + urllib.parse.quote(run, safe="")
            report = server.get_json("/data/plugin/stagnation/report" + query)
            series = server.get_json("/data/plugin/stagnation/series" + query)
            assert report["run"] == series["run"] == run
        assert server.get_json("/data/plugin/stagnation/report?run=nope", status=404)["error"]
        assert server.get_json("/data/plugin/stagnation/series", status=400)["error"]

        # Still being written: TensorBoard's reload brings the new epochs in.
        assert server.get_json("/data/plugin/stagnation/series?run=live")["epochs"] == list(
            range(12)
        )
        write_epochs(range(12, 15))
        server.wait_until(
            lambda: (
                server.get_json("/data/plugin/stagnation/series?run=live")["epochs"]
                == list(range(15))
            ),
            "the new epochs",
            timeout=60,
        )
        assert runs_of(server)["live"]["epochs"] == 15
    finally:
        writer.close()
        server.stop()
