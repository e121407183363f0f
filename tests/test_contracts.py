"""Declared contracts: every registered model and task is in the quick profile, the harness reads
models and tasks only through hooks declared on their base classes, and the README's "Add a
model" and "Add a task" examples work as written, end to end."""

import ast
import importlib
import inspect
import re
from pathlib import Path

import grimp  # import-linter's graph builder (the dev extra)
import pytest

import run_suite
from conftest import BUILTIN_MODELS, BUILTIN_TASKS
from ntm_bench.benchmarks.harness.config import load_profile
from ntm_bench.models import MODELS
from ntm_bench.models.base import SequenceModel
from ntm_bench.results.store import Store
from ntm_bench.tasks import TASKS
from ntm_bench.tasks.base import Task

ROOT = Path(__file__).resolve().parent.parent


def test_every_registered_model_and_task_is_in_the_quick_profile():
    quick = load_profile("quick")
    assert sorted(set(BUILTIN_MODELS) - set(quick.models)) == [], (
        "add the model to benchmarks/profiles/quick.yaml"
    )
    assert sorted(set(BUILTIN_TASKS) - set(quick.tasks)) == [], (
        "add the task to benchmarks/profiles/quick.yaml"
    )


@pytest.mark.parametrize("name", BUILTIN_MODELS)
def test_models_declare_what_the_harness_reads(name):
    cls = MODELS[name]
    assert issubclass(cls, SequenceModel)
    quick = load_profile("quick")
    task = TASKS["copy"](
        **{k: v for k, v in quick.tasks["copy"].items() if k not in ("eval", "train")}
    )
    model = cls(
        task.input_size,
        task.output_size,
        **{k: v for k, v in quick.models[name].items() if k not in ("train", "per_task", "seeds")},
    )
    assert (model.memory_size is not None) == model.has_memory
    if cls.has_seeds_pass:
        assert cls.seeds_forward is not SequenceModel.seeds_forward, (
            "fused models bring their K-seed pass"
        )


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_tasks_declare_what_the_harness_reads(name):
    task = TASKS[name]()
    assert isinstance(task, Task) and task.axes
    for group in (task.channels or {}).values():
        assert 0 <= group.start < group.stop <= task.output_size
    assert all(
        task.max_size(axis) is not None and task.min_size(axis) is not None for axis in task.axes
    )


def test_the_harness_does_not_probe_models_or_tasks():
    probe = re.compile(r"(getattr|hasattr)\((model|task|self\.template|MODELS\[|TASKS\[|cls|klass)")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("benchmarks", "reports", "results")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if probe.search(line)
    ]
    assert hits == [] and "hasattr(" not in (ROOT / "run_suite.py").read_text()


PACKAGES = ("models", "tasks", "benchmarks", "results", "reports")


def project_modules():
    """(dotted name, path) of every module of the project's packages, and run_suite."""
    yield "ntm_bench.run_suite", ROOT / "run_suite.py"
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = ("ntm_bench",) + path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_module_re_exports_another_modules_names():
    """Each class or function is imported from the module that defines it, and a module's
    __all__ lists only its own: one place to look for every name."""
    relayed = []
    for name, path in project_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module):
                continue
            if node.module.split(".")[:2] not in [["ntm_bench", p] for p in PACKAGES]:
                continue
            source = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(source, alias.name)
                defined = inspect.isclass(value) or inspect.isfunction(value)
                if defined and value.__module__ != node.module:
                    relayed.append(f"{path.relative_to(ROOT)}: {alias.name} from {node.module}")
        exported = importlib.import_module(name).__dict__.get("__all__", ())
        for item in exported:
            value = getattr(importlib.import_module(name), item)
            defined = inspect.isclass(value) or inspect.isfunction(value)
            if defined and value.__module__ != name:
                relayed.append(f"{name}.__all__: {item} is {value.__module__}'s")
    assert relayed == []


def readme_block(title: str) -> str:
    """The python code block of the README section `title`."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_examples_add_a_model_and_a_task_that_train(tmp_path, monkeypatch):
    model_code, task_code = {}, {}
    exec(compile(readme_block("Add a model"), "README:gru", "exec"), model_code)
    exec(compile(readme_block("Add a task"), "README:reverse", "exec"), task_code)
    monkeypatch.setitem(MODELS, "gru", model_code["GRU"])
    monkeypatch.setitem(TASKS, "reverse", task_code["Reverse"])
    profile = tmp_path / "tiny.yaml"
    profile.write_text(
        "seeds: [1]\ntrain: {steps: 6, batch_size: 2, eval_interval: 3, eval_size: 4, "
        "log_interval: 2, checkpoint_interval: 3}\nmodels:\n  gru: {hidden_size: 6}\n  ntm: "
        "{controller_size: 6, memory_size: 6, memory_width: 4}\ntasks:\n  reverse: {width: 3, "
        "max_length: 3, eval: {length: [2, 8]}}\n"
    )
    store = tmp_path / "s.sqlite"
    assert (
        run_suite.main(
            ["--profile", str(profile), "--store", str(store), "--jobs", "1", "--no-report"]
        )
        == 0
    )
    runs = Store(store).runs()
    assert sorted(runs.model) == ["gru", "ntm"] and set(runs.status) == {"done"}
    evals = Store(store).evals()
    assert evals[evals.model == "ntm"].set_index("point").beyond_memory.to_dict() == {
        "length=2": False,
        "length=8": True,
    }
    # The reversed target, by hand: inputs x0 x1, then the delimiter, then x1 x0.
    import torch

    batch = task_code["Reverse"](width=3, max_length=2).sample(
        1, torch.Generator().manual_seed(0), length=2
    )
    assert torch.equal(batch.targets[3, 0], batch.inputs[1, 0, :3]) and torch.equal(
        batch.targets[4, 0], batch.inputs[0, 0, :3]
    )


@pytest.mark.parametrize("profile", ["quick", "replicate", "replicate_v2", "protocol"])
def test_the_matched_lstm_has_the_ntms_parameter_count_on_every_task(profile):
    from ntm_bench.benchmarks.harness.plan import resolve
    from ntm_bench.models import build_model
    from ntm_bench.tasks import build_task

    loaded = load_profile(profile)
    for task_name in loaded.tasks:
        counts = {}
        for model in ("ntm", "lstm_matched"):
            spec = resolve(loaded, model, task_name, 1)
            task = build_task(task_name, **spec.task_params)
            counts[model] = build_model(
                model, task.input_size, task.output_size, **spec.model_params
            ).n_params()
        assert abs(counts["lstm_matched"] / counts["ntm"] - 1) <= 0.10, (task_name, counts)


def test_the_readme_layout_names_every_module():
    """The README's Layout section is the map of the tree: a module it does not name is one a
    newcomer will not find."""
    layout = (ROOT / "README.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    missing = [
        str(path.relative_to(ROOT))
        for _, path in project_modules()
        if path.name != "__init__.py" and path.name not in layout
    ]
    assert missing == []


def test_no_two_modules_import_each_other():
    """No import cycle anywhere in the package, function-level imports included (the layers
    contract of pyproject.toml checks imports between packages; this one checks them within)."""
    graph = grimp.build_graph("ntm_bench")
    cycles = sorted(
        {
            tuple(sorted((module, imported)))
            for module in graph.modules
            for imported in graph.find_modules_directly_imported_by(module)
            if graph.chain_exists(importer=imported, imported=module)
        }
    )
    assert cycles == []
