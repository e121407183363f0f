"""Table-driven bad input: exit code 2, one line naming the problem, no traceback, and the
store's bytes unchanged."""

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import run_suite
from conftest import tiny_profile

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A profile and a store that already holds its finished runs."""
    folder = tmp_path_factory.mktemp("bad")
    profile = Path(tiny_profile(folder, seeds=[1]))
    store = folder / "store.sqlite"
    assert run_suite.main(["--profile", str(profile), "--store", str(store), "--jobs", "1"]) == 0
    sqlite3.connect(store).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    return folder, profile, store


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return str(path)


def link(folder, name, target):
    """A symbolic link folder/name -> target (made again each time)."""
    path = folder / name
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    return str(path)


def write_bytes(folder, name, data):
    path = folder / name
    path.write_bytes(data)
    return str(path)


# (case, argv builder(folder, profile) -> extra argv, expected fragment of the one-line message)
CASES = [
    ("unknown model", lambda f, p: ["--models", "gru"], "unknown model 'gru' (known: "),
    ("unknown task", lambda f, p: ["--tasks", "sorting"], "unknown task 'sorting' (known: "),
    ("empty model list", lambda f, p: ["--models", ","], "no model given"),
    ("unknown profile", lambda f, p: ["--profile", "nope"], "unknown profile 'nope' (known: "),
    ("missing profile file", lambda f, p: ["--profile", str(f / "missing.yaml")], "does not exist"),
    (
        "malformed YAML",
        lambda f, p: ["--profile", write(f, "broken.yaml", "train: {steps: 3\n")],
        "malformed YAML at line",
    ),
    (
        "profile not a mapping",
        lambda f, p: ["--profile", write(f, "list.yaml", "- 1\n- 2\n")],
        "expected a mapping",
    ),
    (
        "unknown section",
        lambda f, p: ["--profile", write(f, "sect.yaml", "trian: {steps: 3}\n")],
        "unknown section 'trian'",
    ),
    ("unknown train key", lambda f, p: ["--set", "train.stepz=3"], "train: unknown key 'stepz'"),
    (
        "unknown model key",
        lambda f, p: ["--set", "models.ntm.heads=2"],
        "models.ntm: unknown key 'heads'",
    ),
    (
        "unknown task key",
        lambda f, p: ["--set", "tasks.copy.size=2"],
        "tasks.copy: unknown key 'size'",
    ),
    (
        "unknown eval axis",
        lambda f, p: ["--set", "tasks.copy.eval.items=[3]"],
        "unknown axis 'items'",
    ),
    (
        "unknown per_task task",
        lambda f, p: ["--set", "models.ntm.per_task.sort={}"],
        "unknown task 'sort'",
    ),
    (
        "negative steps",
        lambda f, p: ["--set", "train.steps=-1"],
        "train.steps must be a positive integer",
    ),
    (
        "zero batch",
        lambda f, p: ["--set", "train.batch_size=0"],
        "train.batch_size must be a positive integer",
    ),
    ("negative lr", lambda f, p: ["--set", "train.lr=-0.1"], "must be positive"),
    (
        "an override's error names the override beside the file",
        lambda f, p: ["--set", "train.steps=3", "--set", "models.ntm.memory_width=abc"],
        "tiny.yaml with --set train.steps=3 models.ntm.memory_width=abc: models.ntm",
    ),
    (
        "bad optimizer",
        lambda f, p: ["--set", "train.optimizer=sgd"],
        "train.optimizer must be adam or rmsprop",
    ),
    (
        "zero read heads",
        lambda f, p: ["--set", "models.ntm.read_heads=0"],
        "read_heads must be an integer >= 1",
    ),
    (
        "zero write heads",
        lambda f, p: ["--set", "models.ntm.write_heads=0"],
        "write_heads must be an integer >= 1",
    ),
    (
        "memory smaller than the sequence",
        lambda f, p: ["--set", "tasks.copy.max_length=10"],
        "memory_size 6 is smaller than the 10 vectors",
    ),
    (
        "negative length",
        lambda f, p: ["--set", "tasks.copy.min_length=-1"],
        "copy needs width >= 1",
    ),
    (
        "zero eval length",
        lambda f, p: ["--set", "tasks.copy.eval.length=[0]"],
        "tasks.copy.eval.length: length values must be a non-empty list of positive integers",
    ),
    (
        "eval values not a list",
        lambda f, p: ["--set", "tasks.copy.eval.length=20"],
        "tasks.copy.eval.length: length values must be a non-empty list",
    ),
    (
        "joint point with one axis",
        lambda f, p: ["--set", "tasks.copy.eval.joint=[{length: 20}]"],
        "tasks.copy.eval.joint: expected a list of mappings of two or more axes",
    ),
    (
        "joint point with an unknown axis",
        lambda f, p: ["--set", "tasks.copy.eval.joint=[{length: 20, repeats: 3}]"],
        "tasks.copy.eval.joint: unknown axis 'repeats'",
    ),
    ("published without report", lambda f, p: ["--published"], "--published goes with --report"),
    (
        "published profile never published",
        lambda f, p: ["--report", "--published"],
        "no published results for profile 'tiny'",
    ),
    ("empty --models", lambda f, p: ["--models", ""], "no model given"),
    ("empty --tasks", lambda f, p: ["--tasks", ""], "no task given"),
    (
        "lr not a number",
        lambda f, p: ["--set", "train.lr=abc"],
        "train.lr: expected a number, got 'abc'",
    ),
    (
        "steps not whole",
        lambda f, p: ["--set", "train.steps=2.5"],
        "train.steps: expected an integer, got 2.5",
    ),
    (
        "steps too large for the store",
        lambda f, p: ["--set", "train.steps=1e20"],
        "train.steps: 100000000000000000000 is too large",
    ),
    (
        "bool where a number belongs",
        lambda f, p: ["--set", "train.clip=true"],
        "train.clip: expected a number, got True",
    ),
    (
        "number where a bool belongs",
        lambda f, p: ["--set", "train.compile=1"],
        "train.compile: expected true or false",
    ),
    (
        "model key not a number",
        lambda f, p: ["--set", "models.ntm.memory_size=big"],
        "models.ntm.memory_size: expected an integer, got 'big'",
    ),
    (
        "per-task key not a number",
        lambda f, p: ["--set", "models.ntm.per_task.copy.read_heads=two"],
        "models.ntm.per_task.copy.read_heads: expected an integer",
    ),
    (
        "task key not a number",
        lambda f, p: ["--set", "tasks.copy.width=wide"],
        "tasks.copy.width: expected an integer",
    ),
    (
        "text where text belongs is a number",
        lambda f, p: ["--set", "models.ntm.memory_init=3"],
        "models.ntm.memory_init: expected text, got int 3",
    ),
    (
        "model too large for memory",
        lambda f, p: ["--set", "models.ntm.memory_size=2000000000"],
        "GiB of parameters and buffers",
    ),
    (
        "profile not UTF-8",
        lambda f, p: ["--profile", write_bytes(f, "latin.yaml", b"seeds: [1]\n# caf\xe9\n")],
        "not UTF-8 text",
    ),
    (
        "profile is a folder",
        lambda f, p: ["--profile", str(f)],
        "is a folder, expected a YAML file",
    ),
    ("store is a folder", lambda f, p: ["--store", str(f)], "is a folder, expected a file"),
    (
        "checkpoints is a file",
        lambda f, p: ["--checkpoints", str(p)],
        "is a file, expected a folder",
    ),
    (
        "report dir is a file",
        lambda f, p: ["--report", "--report-dir", str(p)],
        "is a file, expected a folder",
    ),
    (
        "model seeds not a list",
        lambda f, p: ["--set", "models.ntm.seeds=3"],
        "models.ntm.seeds must be a non-empty list",
    ),
    (
        "bad memory init",
        lambda f, p: ["--set", "models.ntm.memory_init=zeros"],
        "memory_init must be one of",
    ),
    (
        "seeds not integers",
        lambda f, p: ["--seeds", "a,b"],
        "--seeds must be a comma list of integers",
    ),
    ("negative seed", lambda f, p: ["--seeds", "-3"], "--seeds must be integers in [0, "),
    ("no seeds in profile", lambda f, p: ["--set", "seeds=[]"], "seeds must be a non-empty list"),
    ("override without =", lambda f, p: ["--set", "train.steps"], "expected key=value"),
    ("override into a value", lambda f, p: ["--set", "train.steps.x=1"], "steps is not a section"),
    ("bad device", lambda f, p: ["--device", "tpu"], "--device 'tpu'"),
    ("zero jobs", lambda f, p: ["--jobs", "0"], "--jobs and --threads must be at least 1"),
    (
        "curriculum not a mapping",
        lambda f, p: ["--set", "train.curriculum=short"],
        'train: train.curriculum must be "none" or a mapping',
    ),
    (
        "curriculum unknown axis",
        lambda f, p: ["--set", "train.curriculum={axis: items, start: 2, every: 5}"],
        "train.curriculum.axis: Copy has no axis 'items' (known: length)",
    ),
    (
        "curriculum start zero",
        lambda f, p: ["--set", "train.curriculum={axis: length, start: 0, every: 5}"],
        "train: train.curriculum.start must be a positive integer, got 0",
    ),
    (
        "curriculum every zero",
        lambda f, p: ["--set", "train.curriculum={axis: length, start: 1, every: 0}"],
        "train: train.curriculum.every must be a positive integer, got 0",
    ),
    (
        "curriculum step zero",
        lambda f, p: ["--set", "train.curriculum={axis: length, start: 1, every: 5, step: 0}"],
        "train: train.curriculum.step must be a positive integer, got 0",
    ),
    (
        "curriculum start beyond the task",
        lambda f, p: ["--set", "tasks.copy.train.curriculum={axis: length, start: 4, every: 5}"],
        "train.curriculum.start 4 must lie in the task's",
    ),
    (
        "curriculum unknown key",
        lambda f, p: ["--set", "train.curriculum.axes=length"],
        "train.curriculum: unknown key 'axes'",
    ),
    (
        "bench with an unknown model",
        lambda f, p: ["--bench", "--models", "gru"],
        "unknown model 'gru'",
    ),
    ("bench on a missing device", lambda f, p: ["--bench", "--device", "tpu"], "--device 'tpu'"),
    # sections that are not mappings
    ("models a list", lambda f, p: ["--set", "models=[ntm, lstm]"], "models: expected a mapping"),
    ("tasks a string", lambda f, p: ["--set", "tasks=copy"], "tasks: expected a mapping, got str"),
    ("train false", lambda f, p: ["--set", "train=false"], "train: expected a mapping, got bool"),
    ("train zero", lambda f, p: ["--set", "train=0"], "train: expected a mapping, got int"),
    (
        "per_task a list",
        lambda f, p: ["--set", "models.ntm.per_task=[copy]"],
        "models.ntm.per_task: expected a mapping, got list",
    ),
    (
        "a model's train a number",
        lambda f, p: ["--set", "models.ntm.train=5"],
        "models.ntm.train: expected a mapping, got int",
    ),
    (
        "eval a list",
        lambda f, p: ["--set", "tasks.copy.eval=[4]"],
        "tasks.copy.eval: expected a mapping, got list",
    ),
    (
        "empty profile",
        lambda f, p: ["--profile", write(f, "empty.yaml", "# nothing\n")],
        "got an empty file",
    ),
    (
        "duplicate key",
        lambda f, p: ["--profile", write(f, "dup.yaml", "train: {steps: 3}\ntrain: {steps: 4}\n")],
        "key 'train' given twice (again at line 2)",
    ),
    (
        "duplicate nested key",
        lambda f, p: ["--profile", write(f, "dup2.yaml", "train:\n  lr: 0.1\n  lr: 0.2\n")],
        "key 'lr' given twice (again at line 3)",
    ),
    # numbers past what the store or the memory holds
    ("huge seed", lambda f, p: ["--seeds", "9223372036854775808"], "--seeds must be integers in"),
    ("huge profile seed", lambda f, p: ["--set", "seeds=[99999999999999999999]"], "seeds must be"),
    (
        "huge model seed",
        lambda f, p: ["--set", "models.lstm.seeds=[2147483648]"],
        "models.lstm.seeds must be a non-empty list of integers in [0, 2147483647]",
    ),
    (
        "huge eval length",
        lambda f, p: ["--set", "tasks.copy.eval.length=[1180591620717411303424]"],
        "eval: length must be in [1, 10000]",
    ),
    (
        "huge training length",
        lambda f, p: ["--set", "tasks.copy.max_length=2147483647"],
        "task parameters: length must be in [1, 10000], got 2147483647",
    ),
    ("huge batch", lambda f, p: ["--set", "train.batch_size=2147483647"], "at most 65536"),
    ("huge eval size", lambda f, p: ["--set", "train.eval_size=2147483647"], "at most 1000000"),
    (
        "data past the memory",
        lambda f, p: ["--set", "train.eval_size=900000", "--set", "tasks.copy.eval.length=[9000]"],
        "GiB of data (at most 2 GiB)",
    ),
    (
        "huge hidden size",
        lambda f, p: ["--set", "models.lstm.hidden_size=2000000000"],
        "model parameters: RuntimeError: Storage size calculation overflowed",
    ),
    ("momentum past 1", lambda f, p: ["--set", "train.momentum=7"], "train.momentum must be in"),
    (
        "empty eval list",
        lambda f, p: ["--set", "tasks.copy.eval.length=[]"],
        "length values must be a non-empty list",
    ),
    # where the run would write, and how
    (
        "checkpoints under a file",
        lambda f, p: ["--checkpoints", write(f, "plain", "x") + "/ck"],
        "plain is a file, so nothing can be made under it",
    ),
    (
        "tensorboard under a file",
        lambda f, p: ["--tensorboard", write(f, "plain", "x") + "/tb"],
        "plain is a file, so nothing can be made under it",
    ),
    (
        "report folder under a file",
        lambda f, p: ["--report-dir", write(f, "plain", "x") + "/rep"],
        "plain is a file, so nothing can be made under it",
    ),
    (
        "checkpoints a link to nowhere",
        lambda f, p: ["--checkpoints", link(f, "dangling", f / "missing")],
        "dangling is a link to",
    ),
    (
        "checkpoints under a link to nowhere",
        lambda f, p: ["--checkpoints", link(f, "dangling", f / "missing") + "/ck"],
        "which does not exist",
    ),
    ("ray address without ray", lambda f, p: ["--ray-address", "h:1"], "goes with --executor ray"),
    (
        "a list as a key",
        lambda f, p: ["--profile", write(f, "listkey.yaml", "? [a, b]\n: 1\n")],
        "malformed YAML at line 1",
    ),
    ("seed with an underscore", lambda f, p: ["--seeds", "1_0"], "--seeds must be a comma list"),
    ("fullwidth seed", lambda f, p: ["--seeds", "\uff11"], "--seeds must be a comma list"),
    (
        "negative clip",
        lambda f, p: ["--set", "models.ntm.clip=-1"],
        "ntm on copy: model parameters: clip must be positive, got -1",
    ),
    (
        "negative count_std",
        lambda f, p: ["--tasks", "repeat_copy", "--set", "tasks.repeat_copy.count_std=-1"],
        "task parameters: count_std must be positive, got -1",
    ),
]


@pytest.mark.parametrize("case,argv,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, argv, message, setup, capsys):
    folder, profile, store = setup
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(
            [
                "--profile",
                str(profile),
                "--store",
                str(store),
                "--jobs",
                "1",
                *argv(folder, profile),
            ]
        )
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before, "the store must not change"


def store_case(folder, name):
    path = folder / name
    if name == "newer.sqlite":
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
    elif name == "corrupt.sqlite":
        path.write_bytes(b"\x00garbage" * 500)
    elif name == "foreign.sqlite":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE people (name TEXT)")
        db.commit()
        db.close()
    return path


@pytest.mark.parametrize(
    "name,message",
    [
        ("newer.sqlite", "has schema version 99, newer than this code's"),
        ("corrupt.sqlite", "cannot open results store"),
        ("foreign.sqlite", "not an ntm-bench results store"),
    ],
)
def test_bad_store_files(name, message, setup, capsys):
    folder, profile, _ = setup
    path = store_case(folder, name)
    before = path.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(["--profile", str(profile), "--store", str(path), "--jobs", "1"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert path.read_bytes() == before


def test_unwritable_store_path(setup, capsys, tmp_path):
    folder, profile, _ = setup
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(
            ["--profile", str(profile), "--store", str(blocker / "results.sqlite"), "--jobs", "1"]
        )
    assert exit_info.value.code == 2
    assert "file is a file, so nothing can be made under it" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--models", "gru"], "unknown model 'gru'"),
        (["--set", "train.stepz=3"], "unknown key 'stepz'"),
    ],
)
def test_no_traceback_in_a_real_process(argv, message, tmp_path):
    store = tmp_path / "s.sqlite"
    out = subprocess.run(
        [sys.executable, str(ROOT / "run_suite.py"), "--store", str(store), *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr
    assert not store.exists(), "bad input must not create the store"


def test_a_report_folder_that_cannot_be_made_is_refused_before_training(setup, tmp_path, capsys):
    # the report is written at the end: its folder (beside the store, unless --report-dir) is
    # checked before anything trains, so an hour of training does not end in "Not a directory"
    _, profile, store = setup
    copy = tmp_path / "store.sqlite"
    copy.write_bytes(store.read_bytes())
    (tmp_path / "reports").write_text("a file where the report folder would go")
    argv = ["--profile", str(profile), "--store", str(copy), "--jobs", "1", "--seeds", "7"]
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "reports is a file, so nothing can be made under it" in lines[0]
    assert copy.read_bytes() == store.read_bytes(), "nothing registered, nothing trained"
    assert run_suite.main([*argv, "--no-report"]) == 0, "without a report there is nothing to make"


def test_a_yaml_merge_key_is_not_a_key_given_twice(tmp_path):
    from ntm_bench.benchmarks.harness.config import load_profile

    path = tmp_path / "merge.yaml"
    path.write_text("seeds: [1]\ntasks:\n  copy: {<<: {width: 3}, max_length: 3}\n")
    assert load_profile(str(path)).tasks["copy"] == {"width": 3, "max_length": 3}
