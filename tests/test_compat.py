"""The private Keras / TensorFlow / TensorBoard attributes we rely on (compat/).

An upgrade that removes or renames one fails `test_private_attribute_exists`
with its name, before a user's run quietly records less. A model of a Keras
without one gets one warning naming it, and its `fit` completes. And no
private name is reached from outside compat/.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from callback_support import read_run
from plugin_support import tensorboard_flags

import tb_stagnation
from tb_stagnation import StagnationCallback
from tb_stagnation.compat import keras as compat_keras
from tb_stagnation.compat import tensorboard as compat_tensorboard
from tb_stagnation.summary import tags

KERAS_VERSION = tuple(int(part) for part in re.findall(r"\d+", keras.__version__)[:2])


def _fitted_models() -> dict:
    """One of each kind of real model, compiled and trained one step."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    sequential = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)]
    )
    sequential.compile("adam", "mse")
    sequential.fit(x, y, epochs=1, verbose=0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    activated = keras.layers.ReLU(name="relu")(hidden)
    functional = keras.Model(inputs, keras.layers.Dense(1, name="out")(activated))
    functional.compile("sgd", "mse")
    functional.fit(x, y, epochs=1, verbose=0)
    ftrl = keras.optimizers.Ftrl()
    ftrl.build(functional.trainable_variables)
    return {"sequential": sequential, "functional": functional, "ftrl": ftrl, "x": x}


@pytest.fixture(scope="module")
def models() -> dict:
    return _fitted_models()


def _mirrored_pieces() -> dict:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        variable = tf.Variable(
            [0.0, 0.0],
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM,
        )
    # What the first batch's spec is under a strategy with two replicas (one
    # process cannot add a second CPU device once TensorFlow has started).
    from tensorflow.python.distribute import values

    spec = values.PerReplicaSpec(tf.TensorSpec([2, 2]), tf.TensorSpec([2, 2]))
    return {"strategy": strategy, "variable": variable, "spec": spec}


# (what compat reads, the Keras version that first has it or None, the check)
# Each check calls the accessor on a real object and asserts it found the
# private thing, not its fallback.
KERAS_PRIVATES = [
    (
        "Model._compute_loss",
        (3, 4),
        lambda m: compat_keras.model_compute_loss(m["sequential"]) is not None,
    ),
    (
        "Model._make_function",
        (3, 6),
        lambda m: compat_keras.make_step_function(m["sequential"]) is not None,
    ),
    (
        "Model._flatten_layers",
        None,
        lambda m: (
            callable(getattr(m["sequential"], "_flatten_layers", None))
            and compat_keras.all_layers_built(m["sequential"])
        ),
    ),
    (
        "Model._symbolic_build",
        None,
        lambda m: compat_keras.can_build_symbolically(m["sequential"]),
    ),
    (
        "Model._compile_loss._flat_losses",
        (3, 6),
        lambda m: bool(compat_keras.compiled_losses(m["functional"])),
    ),
    (
        "Functional._inputs_struct / Sequential._functional",
        None,
        lambda m: (
            compat_keras.graph_inputs(m["functional"]) is not None
            and compat_keras.graph_inputs(m["sequential"]) is not None
        ),
    ),
    (
        "Functional._outputs_struct",
        None,
        lambda m: (
            compat_keras.graph_outputs(m["functional"]) is not None
            and compat_keras.graph_outputs(m["sequential"]) is not None
        ),
    ),
    (
        "KerasTensor._keras_history",
        None,
        lambda m: compat_keras.producing_operation(m["functional"].outputs[0]) is not None,
    ),
    (
        "Layer._trainable_variables / _non_trainable_variables",
        None,
        lambda m: (
            hasattr(m["functional"].layers[1], "_trainable_variables")
            and hasattr(m["functional"].layers[1], "_non_trainable_variables")
            and len(compat_keras.own_variables(m["functional"].layers[1])) == 2
        ),
    ),
    (
        "Layer._layers",
        None,
        lambda m: (
            hasattr(m["sequential"], "_layers")
            and len(compat_keras.sublayers(m["sequential"])) >= 2
        ),
    ),
    (
        "Layer._outbound_nodes",
        None,
        lambda m: (
            [
                type(op).__name__
                for op in compat_keras.consumer_operations(m["functional"].get_layer("hidden"))
            ]
            == ["ReLU"]
        ),
    ),
    (
        "Variable._value",
        None,
        lambda m: isinstance(
            compat_keras.backing_variable(m["sequential"].trainable_variables[0]), tf.Variable
        ),
    ),
    (
        "Optimizer._trainable_variables",
        None,
        lambda m: len(compat_keras.optimizer_trainable_variables(m["sequential"].optimizer)) == 4,
    ),
    (
        "Optimizer._all_reduce_sum_gradients",
        (3, 5),
        lambda m: compat_keras.all_reduce_sum_gradients(m["sequential"].optimizer) is not None,
    ),
    (
        "Ftrl._get_variable_index / _accumulators / _linears",
        None,
        lambda m: (
            compat_keras.is_ftrl(m["ftrl"])
            and all(
                slot is not None
                for slot in compat_keras.ftrl_slots(
                    m["ftrl"], m["functional"].trainable_variables[0]
                )
            )
        ),
    ),
    (
        "keras.src.losses.loss.unscale_loss_for_distribution",
        (3, 6),
        lambda m: _importable("keras.src.losses.loss", "unscale_loss_for_distribution"),
    ),
    (
        "keras.src.utils.io_utils.print_msg",
        None,
        lambda m: compat_keras.keras_print() is not print,
    ),
    (
        "tf.function._omit_frequent_tracing_warning",
        None,
        lambda m: hasattr(tf.function(lambda: 1), "_omit_frequent_tracing_warning"),
    ),
]

TF_PRIVATES = [
    (
        "Operation._set_attr(_lower_using_switch_merge)",
        lambda d: _cond_left_unlowered(),
    ),
    (
        "PerReplicaSpec._value_specs",
        lambda d: compat_keras.per_replica_value_specs(d["spec"]) is not None,
    ),
    (
        "SyncOnReadVariable._get_on_device_or_primary",
        lambda d: d["strategy"].run(
            lambda: compat_keras.replica_local_variable(d["variable"]) is not d["variable"]
        ),
    ),
    (
        "StrategyExtended._in_multi_worker_mode",
        lambda d: (
            callable(getattr(d["strategy"].extended, "_in_multi_worker_mode", None))
            and compat_keras.multi_worker_count(d["strategy"]) == 1
        ),
    ),
    (
        "CollectiveAllReduceExtended._num_workers",
        lambda d: (
            "_num_workers"
            in _source_of(tf.distribute.MultiWorkerMirroredStrategy.__init__.__module__)
        ),
    ),
]


def _cond_left_unlowered() -> bool:
    """`unlowered_cond` marks its `If` op, and the op still gives the cond's answer."""
    marks = []

    @tf.function
    def choose(flag):
        graph = tf.compat.v1.get_default_graph()
        result = compat_keras.unlowered_cond(
            tf, flag, lambda: tf.constant(1.0), lambda: tf.constant(2.0)
        )
        marks.extend(
            op.get_attr("_lower_using_switch_merge")
            for op in graph.get_operations()
            if op.type in ("If", "StatelessIf")
        )
        return result

    answers = (float(choose(tf.constant(True))), float(choose(tf.constant(False))))
    return marks == [False] and answers == (1.0, 2.0)


def _importable(module: str, name: str) -> bool:
    try:
        return hasattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        return False


def _source_of(module: str) -> str:
    return Path(sys.modules[module].__file__).read_text(encoding="utf-8")


@pytest.mark.parametrize("label,since,check", KERAS_PRIVATES, ids=[k[0] for k in KERAS_PRIVATES])
def test_keras_private_attribute_exists(models, label, since, check):
    if since is not None and KERAS_VERSION < since:
        pytest.skip(f"Keras {keras.__version__} predates {label}; compat falls back")
    assert check(models), (
        f"Keras {keras.__version__} changed {label}: update tb_stagnation/compat/keras.py"
    )


@pytest.mark.parametrize("label,check", TF_PRIVATES, ids=[t[0] for t in TF_PRIVATES])
def test_tensorflow_private_attribute_exists(label, check):
    assert check(_mirrored_pieces()), (
        f"TensorFlow {tf.__version__} changed {label}: update tb_stagnation/compat/keras.py"
    )


def test_tensorboard_private_attributes_exist(tmp_path):
    import tensorboard
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    version = tensorboard.__version__
    handler = compat_tensorboard.request_handler_class()
    assert handler is not None and callable(handler.send_error), (
        f"TensorBoard {version} changed program._WSGIRequestHandler"
    )
    assert compat_tensorboard.tensor_size_module() is not None, (
        f"TensorBoard {version} changed data_provider._tensor_size"
    )
    import grpc
    from tensorboard.data import grpc_provider

    channel = grpc.insecure_channel("localhost:1")  # never connected: nothing is asked
    try:
        stub = grpc_provider.make_stub(channel)
        parts = compat_tensorboard.grpc_provider_parts(
            grpc_provider.GrpcDataProvider("localhost:1", stub)
        )
        assert parts == ("localhost:1", stub), (
            f"TensorBoard {version} changed GrpcDataProvider._addr or ._stub"
        )
    finally:
        channel.close()
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    parts = compat_tensorboard.multiplexer_provider_parts(
        data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    )
    assert parts == (multiplexer, str(tmp_path)), (
        f"TensorBoard {version} changed MultiplexerDataProvider._multiplexer or ._logdir"
    )
    assert compat_tensorboard.data_server_channel_opener(tensorboard_flags(), "localhost:1"), (
        f"TensorBoard {version} changed --grpc_creds_type"
    )
    writer = EventFileWriter(str(tmp_path))
    try:
        assert compat_tensorboard.event_file_handle(writer) is not None, (
            f"TensorBoard {version} changed EventFileWriter._general_file_writer"
        )
    finally:
        writer.close()


def test_tensorflow_stub_switch_leaves_no_module_behind():
    """TensorBoard's `notf` switch resolves its compat layer to the stub, without
    importing TensorFlow, and is gone from sys.modules right after."""
    script = (
        "import sys\n"
        "from tb_stagnation.compat.tensorboard import resolve_tensorflow_stub\n"
        "resolve_tensorflow_stub()\n"
        "from tensorboard.compat import tf\n"
        "assert 'tensorflow_stub' in repr(tf), repr(tf)\n"
        "assert 'tensorboard.compat.notf' not in sys.modules\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ---------------------------------------------------------------- a Keras without one


class NoSymbolicBuildModel(keras.Model):
    """A real subclassed model on a Keras that had no `Model._symbolic_build`
    (Keras calls it only under a distribution strategy, so training works)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = keras.layers.Dense(4, activation="relu")
        self.head = keras.layers.Dense(1)

    @property
    def _symbolic_build(self):  # type: ignore[override]
        raise AttributeError("_symbolic_build")

    def call(self, inputs):
        return self.head(self.hidden(inputs))


def test_probe_lists_nothing_for_a_current_model(models):
    assert compat_keras.probe_keras(models["functional"]) == []


def test_a_missing_private_gives_one_warning_naming_it_and_fit_completes(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(64, 4)).astype("float32")
    y = x[:, :1] * 2.0
    model = NoSymbolicBuildModel()
    model.compile("adam", "mse")
    assert [m.attribute for m in compat_keras.probe_keras(model)] == ["Model._symbolic_build"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(
            x,
            y,
            epochs=2,
            batch_size=16,
            verbose=0,
            callbacks=[StagnationCallback(log_dir=str(tmp_path), preflight=False)],
        )
    assert len(history.history["loss"]) == 2
    ours = [w for w in caught if "StagnationCallback" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert "`Model._symbolic_build`" in message and "internal error" not in message
    assert keras.__version__ in message
    # Only that part is off: the epoch's own logs are still written.
    assert sorted(read_run(str(tmp_path)).scalar(tags.logs_tag("loss"))) == [0, 1]


# ---------------------------------------------------------------- one door

# Private names of Keras, TensorFlow and TensorBoard that only compat/ may use.
PRIVATE_NAMES = {
    "_compute_loss",
    "_make_function",
    "_flatten_layers",
    "_symbolic_build",
    "_compile_loss",
    "_flat_losses",
    "_outputs_struct",
    "_inputs_struct",
    "_functional",
    "_trainable_variables",
    "_non_trainable_variables",
    "_layers",
    "_outbound_nodes",
    "_keras_history",
    "_value",
    "_all_reduce_sum_gradients",
    "_get_variable_index",
    "_accumulators",
    "_linears",
    "_omit_frequent_tracing_warning",
    "_in_multi_worker_mode",
    "_num_workers",
    "_value_specs",
    "_get_on_device_or_primary",
    "_WSGIRequestHandler",
    "_stub",
    "_addr",
    "_tensor_size",
    "_general_file_writer",
    "_set_attr",
}
# Our own objects, whose underscore attributes are ours to use.
OWN_RECEIVERS = {"self", "cls", "hooks"}


def _package_files() -> list[Path]:
    root = Path(tb_stagnation.__file__).parent
    return [p for p in root.rglob("*.py") if "compat" not in p.relative_to(root).parts]


def test_private_names_are_reached_only_through_compat():
    offences = []
    for path in _package_files():
        source = path.read_text(encoding="utf-8")
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE)
        ]
        for before, dot, name in zip(tokens, tokens[1:], tokens[2:]):
            if (
                dot.string == "."
                and name.type == tokenize.NAME
                and name.string in PRIVATE_NAMES
                and before.string not in OWN_RECEIVERS
            ):
                offences.append(f"{path.name}:{name.start[0]} .{name.string}")
        for token in tokens:
            if token.type == tokenize.STRING:
                literal = token.string.strip("\"'")
                if literal in PRIVATE_NAMES or literal.startswith("keras.src"):
                    offences.append(f"{path.name}:{token.start[0]} {token.string}")
        for match in re.finditer(r"from keras\.src|import keras\.src", source):
            offences.append(f"{path.name}: {match.group(0)}")
    assert offences == [], "private access outside tb_stagnation/compat: " + ", ".join(offences)


def test_no_lasting_sys_modules_edits_outside_compat():
    edit = re.compile(
        r"sys\.modules\s*(\[[^\]]*\]\s*=(?!=)|\.(setdefault|pop|update|__setitem__)\()"
    )
    offences = [
        f"{path.name}: {match.group(0)}"
        for path in _package_files()
        for match in edit.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offences == []
