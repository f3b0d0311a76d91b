"""`run_scope`: a provider narrowed to one logical run's TensorBoard runs."""

from tensorboard.data import provider as tb_provider

from tb_stagnation.plugin.run_scope import RunScopedProvider, tensorboard_runs


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
