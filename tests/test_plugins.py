"""Plugins: a model and a task defined outside the package, loaded as module:Class names and as
installed entry points, train into the store and the report like the built-ins, carry their
distribution and version in the run's config, and a plugin that does not fit exits 2."""

import json
import sys
import textwrap

import pytest

import run_suite
from ntm_bench.benchmarks.harness import plugins
from ntm_bench.benchmarks.harness.config import load_profile
from ntm_bench.benchmarks.harness.profile_file import key_parts
from ntm_bench.models import MODELS
from ntm_bench.results.store import Store
from ntm_bench.tasks import TASKS

CODE = '''
import torch
from torch import nn
from ntm_bench.models.base import SequenceModel
from ntm_bench.tasks.base import Batch, Task, random_bits, sizes


class Tiny(SequenceModel):
    def __init__(self, input_size: int, output_size: int, hidden: int = 5):
        super().__init__(input_size, output_size)
        self.rnn = nn.GRU(input_size, hidden)
        self.out = nn.Linear(hidden, output_size)

    def forward(self, inputs):
        return self.out(self.rnn(inputs)[0])


class Flip(Task):
    """Echo the bits inverted, one step later."""
    axes = ("length",)

    def __init__(self, width: int = 3, max_length: int = 4):
        self.width, self.max_length = width, max_length
        self.input_size, self.output_size = width, width

    def sample(self, batch_size, generator, length=None):
        self.check_size({"length": length})
        n = int(sizes(length, 1, self.max_length, batch_size, generator).max())
        bits = random_bits((n + 1, batch_size, self.width), generator)
        bits[n] = 0
        targets = torch.cat([torch.zeros(1, batch_size, self.width), 1 - bits[:-1]])
        mask = torch.ones(n + 1, batch_size)
        mask[0] = 0
        return Batch(bits, targets, mask)


class NotAModel:
    pass


class BatchFirst(Tiny):
    def forward(self, inputs):
        return super().forward(inputs).transpose(0, 1)


class WrongWidth(Tiny):
    def forward(self, inputs):
        return torch.cat([super().forward(inputs), inputs[..., :1]], -1)


class WithState(Tiny):
    def forward(self, inputs):
        return super().forward(inputs), None


class Picky(Tiny):
    def __init__(self, input_size: int, output_size: int, hidden: int = 5):
        assert hidden > 100, "hidden is too small"
        super().__init__(input_size, output_size, hidden)


class Stepper(SequenceModel):
    """A step model whose forward loops over step itself."""

    def __init__(self, input_size: int, output_size: int, hidden: int = 5):
        super().__init__(input_size, output_size)
        self.cell = nn.GRUCell(input_size, hidden)
        self.out = nn.Linear(hidden, output_size)

    def step(self, x, state):
        state = self.cell(x, state)
        return self.out(state), state

    def forward(self, inputs):
        state = inputs.new_zeros(inputs.shape[1], self.cell.hidden_size)
        return torch.stack([self.step(x, state)[0] for x in inputs])


class Unrolled(Stepper):
    """The same step model, its forward through unroll (compiled chunks when compiled)."""

    def forward(self, inputs):
        state = inputs.new_zeros(inputs.shape[1], self.cell.hidden_size)
        return self.unroll(inputs, state)[0]


class ClaimsMemory(Tiny):
    """Says it has a memory, but its forward takes no trace."""

    has_memory = True
    memory_size = 4


class NoSizes(Flip):
    def __init__(self, width: int = 3, max_length: int = 4):
        self.width, self.max_length = width, max_length


class BatchFirstTask(Flip):
    def sample(self, batch_size, generator, length=None):
        return Batch(*(t.transpose(0, 1) for t in super().sample(batch_size, generator, length)))


class NoAxes(Task):
    def sample(self, batch_size, generator):
        raise NotImplementedError
'''

PROFILE = """
seeds: [1]
train: {steps: 4, batch_size: 2, eval_interval: 2, eval_size: 4, log_interval: 2,
  checkpoint_interval: 2}
models:
  MODEL: {hidden: 4}
  lstm: {hidden_size: 4, num_layers: 1}
tasks:
  TASK: {width: 2, max_length: 3, eval: {length: [2, 6]}}
"""


BROKEN_MODELS = ("Tiny", "NotAModel", "BatchFirst", "WrongWidth", "WithState", "Picky")
BROKEN_MODELS += ("Stepper", "Unrolled", "ClaimsMemory")
BROKEN_TASKS = ("Flip", "NoAxes", "NoSizes", "BatchFirstTask")


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package `myplugins` outside the repository, importable, and a distribution that
    declares it as entry points (a .dist-info on sys.path, as pip would leave it)."""
    (tmp_path / "myplugins").mkdir()
    (tmp_path / "myplugins" / "__init__.py").write_text(textwrap.dedent(CODE))
    info = tmp_path / "myplugins-2.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugins\nVersion: 2.5\n")
    (info / "entry_points.txt").write_text(
        "[ntm_bench.models]\ntiny = myplugins:Tiny\n\n[ntm_bench.tasks]\nflip = myplugins:Flip\n"
    )
    (info / "top_level.txt").write_text("myplugins\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry, names in (
        (MODELS, ("tiny", *(f"myplugins:{name}" for name in BROKEN_MODELS))),
        (TASKS, ("flip", *(f"myplugins:{name}" for name in BROKEN_TASKS))),
    ):
        for name in names:
            monkeypatch.delitem(registry, name, raising=False)
    yield tmp_path
    for registry in (MODELS, TASKS):  # leave the registries as the other tests expect them
        for name in [
            n
            for n in registry
            if n in ("tiny", "flip") or n.startswith(("myplugins", "deepplugins"))
        ]:
            del registry[name]


@pytest.mark.parametrize(
    "model,task",
    [("myplugins:Tiny", "myplugins:Flip"), ("tiny", "flip")],
    ids=["module-path", "entry-point"],
)
def test_a_plugin_trains_into_the_store_and_the_report(package, model, task, capsys):
    profile = package / "p.yaml"
    profile.write_text(PROFILE.replace("MODEL", f'"{model}"').replace("TASK", f'"{task}"'))
    store = package / "s.sqlite"
    assert run_suite.main(["--profile", str(profile), "--store", str(store), "--jobs", "1"]) == 0
    runs = Store(store).runs()
    assert (
        sorted(runs.model) == sorted([model, "lstm"])
        and set(runs.status) == {"done"}
        and set(runs.task) == {task}
    )
    config = json.loads(runs[runs.model == model].config_json.iloc[0])
    assert config["plugins"] == {"model": "myplugins==2.5", "task": "myplugins==2.5"}
    # the task is a plugin
    assert "plugins" in json.loads(runs[runs.model == "lstm"].config_json.iloc[0])
    assert (package / "reports" / "p" / "index.html").is_file()
    evals = Store(store).evals()
    assert set(evals.point) == {"length=2", "length=6"}


def builtin_profile(folder):
    """The test profile with built-ins only (lstm_matched on copy), for plugins named by flags."""
    profile = folder / "p.yaml"
    profile.write_text(
        PROFILE.replace("MODEL", "lstm_matched")
        .replace("{hidden: 4}", "{params: 300}")
        .replace("TASK", "copy")
        .replace("width: 2, max_length: 3", "width: 2, max_length: 2")
    )
    return profile


def test_a_plugin_named_on_the_command_line(package, capsys):
    profile = builtin_profile(package)
    assert (
        run_suite.main(["params", "--profile", str(profile), "--models", "lstm,myplugins:Tiny"])
        == 0
    )
    assert "myplugins:Tiny" in capsys.readouterr().out
    # alone, no row has a paper count: its two columns say "-", not None or <NA>
    assert run_suite.main(["params", "--profile", str(profile), "--models", "myplugins:Tiny"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[1] == "myplugins:Tiny" and row[3:] == ["-", "-"], row


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--models", "myplugins:NotAModel"],
            "plugin 'myplugins:NotAModel' is not a ntm_bench.models.base.SequenceModel subclass",
        ),
        (["--models", "myplugins:Missing"], "module myplugins has no attribute 'Missing'"),
        (
            ["--models", "nowhere.pkg:Model"],
            "plugin 'nowhere.pkg:Model': cannot import nowhere.pkg",
        ),
        (["--tasks", "myplugins:NoAxes"], "does not define axes"),
        (
            ["--models", "myplugins:BatchFirst"],
            "returned logits of shape [2, 3, 2], expected [3, 2, 2] ([T, B, O], time-major)",
        ),
        (["--models", "myplugins:WrongWidth"], "returned logits of shape [3, 2, 3], expected"),
        (["--models", "myplugins:WithState"], "forward returned tuple, not a floating tensor"),
        (
            ["--models", "myplugins:Picky"],
            "p: myplugins:Picky on copy: model parameters: AssertionError: hidden is too small",
        ),
        (
            ["--models", "myplugins:Stepper", "--set", "train.compile=true"],
            "its forward does not run the steps through self.unroll(inputs, state)",
        ),
        (["--tasks", "myplugins:NoSizes"], "the task sets no input_size"),
        (
            ["--models", "myplugins:ClaimsMemory"],
            "has_memory is True but forward(inputs, trace=True) fails",
        ),
        (
            ["--tasks", "myplugins:BatchFirstTask"],
            "sample(2) returned inputs of shape [2, 5, 3], expected [T, 2, 3] (time-major",
        ),
    ],
)
def test_a_broken_plugin_exits_2_with_one_line(package, argv, message, capsys):
    profile = builtin_profile(package)
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(["params", "--profile", str(profile), *argv])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


@pytest.mark.parametrize("compile", ["false", "true"])
def test_a_step_model_through_unroll_passes_the_contract(package, compile, capsys):
    profile = builtin_profile(package)
    argv = ["params", "--profile", str(profile), "--models", "myplugins:Unrolled"]
    assert run_suite.main([*argv, "--set", f"train.compile={compile}"]) == 0
    assert "myplugins:Unrolled" in capsys.readouterr().out
    # and the loop of its own passes too, where nothing is to be compiled
    argv[-1] = "myplugins:Stepper"
    if compile == "false":
        assert run_suite.main([*argv, "--set", "train.compile=false"]) == 0
    else:
        with pytest.raises(SystemExit, match="2"):
            run_suite.main([*argv, "--set", "train.compile=true"])


def test_contract_check_names_what_is_missing():
    class Half(MODELS["lstm"].__mro__[1]):  # a SequenceModel that forgot forward
        pass

    with pytest.raises(plugins.PluginError, match="does not define forward"):
        plugins.check("models", "half", Half)


@pytest.mark.parametrize(
    "key,parts",
    [
        ("models.mypkg.rnn:Elman.hidden_size", ["models", "mypkg.rnn:Elman", "hidden_size"]),
        ("models.mypkg.rnn:Elman.train.lr", ["models", "mypkg.rnn:Elman", "train", "lr"]),
        ("tasks.a.b:Flip.eval.length", ["tasks", "a.b:Flip", "eval", "length"]),
        ("models.ntm.memory_size", ["models", "ntm", "memory_size"]),
        ("train.lr", ["train", "lr"]),
    ],
)
def test_an_override_keeps_a_plugins_dotted_name_whole(key, parts):
    assert key_parts(key) == parts


def test_an_override_reaches_a_plugin_named_by_its_path(package, capsys):
    # a package of its own: one imported by an earlier test would keep that test's folder
    (package / "deepplugins").mkdir()
    (package / "deepplugins" / "__init__.py").write_text("")
    (package / "deepplugins" / "deep.py").write_text("from myplugins import Tiny\n")
    profile = package / "p.yaml"
    profile.write_text(
        PROFILE.replace("MODEL", '"deepplugins.deep:Tiny"').replace("TASK", '"myplugins:Flip"')
    )
    loaded = load_profile(str(profile), ["models.deepplugins.deep:Tiny.hidden=7"])
    assert loaded.models["deepplugins.deep:Tiny"]["hidden"] == 7
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(
            ["params", "--profile", str(profile), "--set", "models.deepplugins.deep:Tiny.hidden=x"]
        )
    assert exit_info.value.code == 2
    assert (
        "models.deepplugins.deep:Tiny.hidden: expected an integer, got 'x'"
        in capsys.readouterr().err
    )


def test_an_edit_to_a_plugin_that_is_not_installed_is_a_new_run(package):
    (package / "loose_plugin.py").write_text("from myplugins import Tiny\n")
    before = plugins.distribution("loose_plugin")
    assert before.startswith("loose_plugin (not installed, source sha256:")
    (package / "loose_plugin.py").write_text("from myplugins import Tiny  # tuned\n")
    assert plugins.distribution("loose_plugin") != before
    assert plugins.distribution("myplugins") == "myplugins==2.5"  # installed: its version


def test_a_plugin_module_in_the_working_directory_is_found(tmp_path, monkeypatch, capsys):
    """`--models here:Tiny` with here.py in the working directory and nowhere on sys.path (as
    for the ntm-bench console script, whose sys.path holds its bin folder): it loads."""
    (tmp_path / "plug_in_cwd.py").write_text(textwrap.dedent(CODE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "plug_in_cwd", raising=False)
    name = "plug_in_cwd:Tiny"
    try:
        assert run_suite.main(["params", "--profile", "quick", "--models", name]) == 0
        assert name in capsys.readouterr().out
        assert sys.path[-1] == str(tmp_path)  # appended: an installed module of the name wins
    finally:
        MODELS.pop(name, None)
