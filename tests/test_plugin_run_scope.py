"""`run_scope`: a provider narrowed to one logical run's TensorBoard runs."""

import json
import os
import urllib.parse

from plugin_support import PREFIX, train_keras_run, write_callback_run
from tensorboard import context as tb_context
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.data import provider as tb_provider
from tensorboard.plugins import base_plugin
from werkzeug import test as werkzeug_test

from tb_stagnation.plugin.run_scope import RunScopedProvider, run_scoped, tensorboard_runs
from tb_stagnation.plugin.stagnation_plugin import StagnationPlugin


class RecordingProvider:
    def __init__(self):
        self.filters = []

    def list_scalars(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        self.filters.append(run_tag_filter)
        return {"called": True}

    def list_plugins(self, ctx=None, *, experiment_id):
        return ["stagnation"]


def test_tensorboard_runs_of_a_logical_run():
    assert tensorboard_runs(".")[:4] == [".", "stagnation", "train", "validation"]
    # Another tool's run is its own folder; a custom loop's held-out folder sits beside train/.
    assert tensorboard_runs("a/b")[:4] == ["a/b", "a/b/stagnation", "a/b/train", "a/b/validation"]
    assert "a/b/test" in tensorboard_runs("a/b")
    assert "a\\b\\stagnation" in tensorboard_runs("a/b")  # TensorBoard on Windows


def test_filters_are_intersected_with_the_scope():
    inner = RecordingProvider()
    scoped = RunScopedProvider(inner, ["a/stagnation", "a/train"])
    assert scoped.list_scalars(None, experiment_id="", plugin_name="p") == {"called": True}
    assert inner.filters[-1].runs == frozenset({"a/stagnation", "a/train"})
    rtf = tb_provider.RunTagFilter(runs=["a/train", "b/train"], tags=["t"])
    scoped.list_scalars(None, experiment_id="", plugin_name="p", run_tag_filter=rtf)
    assert inner.filters[-1].runs == frozenset({"a/train"})
    assert inner.filters[-1].tags == frozenset({"t"})


def test_an_empty_intersection_never_reaches_the_provider():
    # Over gRPC an empty run list would mean "every run".
    inner = RecordingProvider()
    scoped = RunScopedProvider(inner, ["a/train"])
    rtf = tb_provider.RunTagFilter(runs=["b/train"])
    assert scoped.list_scalars(None, experiment_id="", plugin_name="p", run_tag_filter=rtf) == {}
    assert inner.filters == []


def test_other_methods_pass_through():
    assert RunScopedProvider(RecordingProvider(), []).list_plugins(experiment_id="") == [
        "stagnation"
    ]


class _NotTensorBoardsOwn(data_provider.MultiplexerDataProvider):
    """TensorBoard's Python-loader provider under another class: `run_scoped`
    narrows its filters instead of viewing its multiplexer."""


def _client(provider, logdir: str) -> werkzeug_test.Client:
    context = base_plugin.TBContext(data_provider=provider, logdir=logdir)
    app = application.TensorBoardWSGI([StagnationPlugin(context)], data_provider=provider)
    return werkzeug_test.Client(app)


def test_a_view_of_the_python_loaders_runs_answers_as_the_narrowed_filters(tmp_path):
    """With the Python loader, `/report` and `/series` read through a provider
    made on a view of the multiplexer holding one run's TensorBoard runs;
    every answer must equal the one through narrowed filters, for every kind
    of run, beside many others."""
    logdir = str(tmp_path)
    write_callback_run(os.path.join(logdir, "callback"), epochs=12, stall_from=3)
    write_callback_run(os.path.join(logdir, "callback_too"), epochs=4)
    train_keras_run(os.path.join(logdir, "keras_only"), epochs=3)
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={"stagnation": 0, "scalars": 0}
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    viewed = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    narrowed = _NotTensorBoardsOwn(multiplexer, logdir)

    scoped = run_scoped(viewed, tensorboard_runs("keras_only"))
    assert type(scoped) is data_provider.MultiplexerDataProvider and scoped is not viewed
    assert type(run_scoped(narrowed, ["keras_only/train"])) is RunScopedProvider
    ctx = tb_context.RequestContext()
    listed = scoped.list_scalars(ctx, experiment_id="", plugin_name="scalars")
    assert set(listed) == {"keras_only/train", "keras_only/validation"}
    assert listed == run_scoped(narrowed, tensorboard_runs("keras_only")).list_scalars(
        ctx, experiment_id="", plugin_name="scalars"
    )

    answers = []
    for provider in (viewed, narrowed):
        client = _client(provider, logdir)
        answer = {}
        for run in ("callback", "callback_too", "keras_only", "missing", "callback/stagnation"):
            for route in ("/report", "/series"):
                response = client.get(f"{PREFIX}{route}?run={urllib.parse.quote(run)}")
                answer[route, run] = (response.status_code, json.loads(response.data))
        answers.append(answer)
    assert answers[0] == answers[1]
    assert answers[0]["/report", "callback"][1]["stalled_epochs"]
    assert answers[0]["/series", "keras_only"][1]["epochs"] == [0, 1, 2]
    assert answers[0]["/report", "missing"][0] == 404
