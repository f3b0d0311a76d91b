"""The package's shape (issue 15): no import cycle, one home for each fact.

Every module under tb_stagnation/ is parsed with `ast`; imports inside
functions count (a lazy import still makes a cycle, just a later one), imports
under `if TYPE_CHECKING:` do not (they never run). No TensorFlow needed.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
from collections import defaultdict

import pytest

import tb_stagnation
from tb_stagnation import losses

PACKAGE = pathlib.Path(tb_stagnation.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _imports(name: str) -> set[str]:
    """The package's modules that module `name` imports, anywhere in it."""
    tree = TREES[name]
    is_package = MODULES[name].name == "__init__.py"
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    found.add(sub)
                elif target in MODULES:
                    found.add(target)
    found.discard(name)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_sees_lazy_imports():
    # Sanity: a function-level import is an edge (overfit imports TensorFlow lazily,
    # the CLI the analysis).
    assert "tb_stagnation.analysis.api" in GRAPH["tb_stagnation.cli"]
    assert "tb_stagnation.analysis.report" in GRAPH["tb_stagnation.analysis.api"]


def test_no_import_cycle_inside_the_package():
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["tb_stagnation.overfit", "tb_stagnation.lr_range"])
def test_experiments_on_a_copy_do_not_reach_into_the_callback(module):
    inside = sorted(m for m in GRAPH[module] if m.startswith("tb_stagnation.callback"))
    assert inside == [], f"{module} imports the callback's internals: {inside}"


def test_the_taxonomy_and_the_json_policy_import_nothing_heavy():
    assert GRAPH["tb_stagnation.losses"] == set()
    source = MODULES["tb_stagnation.losses"].read_text(encoding="utf-8")
    assert "tensorflow" not in source.split('"""', 2)[2]


# --- one home for each fact -----------------------------------------------------


def _definitions() -> dict[str, list[str]]:
    """Every module-level function and class name -> the modules defining it."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, tree in TREES.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name].append(name)
    return found


ONE_HOME = {
    # the loss taxonomy
    "loss_family": "tb_stagnation.losses",
    "loss_task": "tb_stagnation.losses",
    "normalize_name": "tb_stagnation.losses",
    "infer_task": "tb_stagnation.losses",
    "loss_name_and_logits": "tb_stagnation.losses",
    "error_scale_of_loss": "tb_stagnation.losses",
    "is_sparse": "tb_stagnation.losses",
    # a run's status
    "run_status": "tb_stagnation.analysis.status",
    "is_healthy": "tb_stagnation.analysis.status",
    # findings as text
    "finding_lines": "tb_stagnation.analysis.presentation",
    "render_text": "tb_stagnation.analysis.presentation",
    "summary_line": "tb_stagnation.analysis.presentation",
    "printable": "tb_stagnation.names",
    # the JSON policy for non-finite numbers
    "finite_or_none": "tb_stagnation.jsonable",
    "to_jsonable": "tb_stagnation.jsonable",
    "to_report_json": "tb_stagnation.jsonable",
    # TensorFlow + Keras, or an install hint
    "import_tensorflow_and_keras": "tb_stagnation.keras_import",
}


@pytest.mark.parametrize("function", sorted(ONE_HOME))
def test_each_fact_has_one_home(function):
    assert _definitions()[function] == [ONE_HOME[function]]


def _module_constants(tree: ast.Module) -> dict[str, ast.AST]:
    constants = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name):
                constants[target.id] = node.value
    return constants


def _strings(node: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_only_the_taxonomy_lists_loss_names():
    """A module-level collection naming two or more Keras losses is a second
    taxonomy (the four copies that disagreed about poisson)."""
    offenders = []
    for name, tree in TREES.items():
        if name == "tb_stagnation.losses":
            continue
        for constant, value in _module_constants(tree).items():
            if not isinstance(value, (ast.Set, ast.Dict, ast.List, ast.Tuple, ast.Call)):
                continue
            named = {s for s in _strings(value) if losses.loss_info(s) is not None}
            if len(named) >= 2:
                offenders.append(f"{name}.{constant}: {sorted(named)}")
    assert offenders == []


def test_status_names_and_the_collapse_share_are_defined_once():
    assigned: dict[str, list[str]] = defaultdict(list)
    for name, tree in TREES.items():
        for constant, value in _module_constants(tree).items():
            if isinstance(value, ast.Constant):
                assigned[constant].append(name)
    for status in ("STALLED", "FINDINGS", "ERROR", "HEALTHY", "EMPTY"):
        assert assigned[f"STATUS_{status}"] == ["tb_stagnation.analysis.status"]
    collapse = sorted(c for c in assigned if "COLLAPSE" in c and "SHARE" in c)
    assert collapse == ["COLLAPSED_TOP_SHARE"]
    assert assigned["COLLAPSED_TOP_SHARE"] == ["tb_stagnation.analysis.stall"]


def test_the_cli_prints_what_the_library_returns():
    """The CLI opens no logdir and encodes no JSON itself: analyze() and the
    JSON policy do."""
    source = MODULES["tb_stagnation.cli"].read_text(encoding="utf-8")
    assert "open_logdir" not in source
    assert "json.dump" not in source
    assert "analyze(" in source


# --- the taxonomy against Keras itself ----------------------------------------------


def _keras_losses():
    import keras

    skip = {"Loss", "LossFunctionWrapper", "deserialize", "serialize", "get"}
    found = []
    for name, value in vars(keras.losses).items():
        if name.startswith("_") or name in skip or not callable(value):
            continue
        found.append((name, value))
    return keras, found


def test_every_keras_loss_is_in_the_taxonomy():
    """Every loss `keras.losses` exports is known (its task may be "unknown":
    the loss does not say, the output activation decides), by its function
    name, its class name, and the name an instance reports."""
    keras, exported = _keras_losses()
    assert len(exported) >= 40
    unknown = []
    for name, value in exported:
        if losses.loss_info(name) is None:
            unknown.append(name)
            continue
        assert losses.loss_task(name) in losses.TASKS
        if inspect.isclass(value):
            try:
                instance = value()
            except TypeError:  # needs arguments
                continue
            resolved, _ = losses.loss_name_and_logits(instance)
            assert losses.loss_info(resolved) is losses.loss_info(name), (name, resolved)
    assert unknown == []
    # The string aliases compile() accepts.
    from keras.src.losses import ALL_OBJECTS_DICT

    aliases = [key for key in ALL_OBJECTS_DICT if key not in ("Loss", "LossFunctionWrapper")]
    assert [alias for alias in aliases if losses.loss_info(alias) is None] == []


def test_the_former_copies_agree_with_the_taxonomy():
    """The callback's card, the card read from Keras's logged config, the label
    checks and the baselines answer from the same table."""
    from tb_stagnation.analysis import baselines
    from tb_stagnation.callback import model_info
    from tb_stagnation.reader import keras_config

    for info in losses.LOSSES:
        for spelling in (info.name, *info.aliases):
            task = losses.infer_task("linear", spelling, 1)[0]
            assert model_info.infer_task("linear", spelling, 1)[0] == task
            assert keras_config._task(spelling, "linear", 1) == task
            assert baselines.loss_family(spelling) == info.family
            assert losses.canonical_name(spelling) == info.name
    # Where the copies used to disagree: what Keras computes decides.
    assert losses.loss_task("poisson") == losses.TASK_REGRESSION
    assert losses.loss_task("msle") == losses.TASK_REGRESSION
    assert losses.loss_task("mape") == losses.TASK_REGRESSION
    assert losses.loss_task("hinge") == losses.TASK_BINARY
    assert losses.loss_info("hinge").label_range == (-1.0, 1.0)
    assert losses.loss_task("kl_divergence") == losses.TASK_UNKNOWN
    assert losses.is_sparse("categorical_generalized_cross_entropy")
    assert keras_config._loss({"loss": {"class_name": "KLDivergence", "config": {}}}) == (
        "kl_divergence",
        False,
    )
