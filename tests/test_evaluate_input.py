"""Bad input to `evaluate`, `check` and `bench`, table-driven: exit code 2, one line on stderr
naming the flag, file or run at fault, and the store's bytes unchanged: nothing scored, trained or
measured first. Also the checks behind them (reevaluate.parse_points / parse_shape / prepare,
baseline.load_baseline, bench.check_destinations) called directly."""

import hashlib
import os
import sqlite3

import pytest

import run_suite
import tasks.base
from benchmarks.reevaluate import parse_points, parse_shape
from tasks.copy import Copy

PROFILE = """
seeds: [1]
train: {steps: 4, batch_size: 2, eval_interval: 2, eval_size: 4, log_interval: 2, checkpoint_interval: 2}
models:
  ntm: {controller_size: 6, memory_size: 6, memory_width: 4}
  lstm: {hidden_size: 6, num_layers: 1}
tasks:
  copy: {width: 3, max_length: 3, eval: {length: [4]}}
"""
HUGE = "1180591620717411303424"  # 2**70: beyond every integer bound
BIG = "1000000000"  # within MAX_INT: the task's own check_size bounds it (tasks.base.MAX_SIZE)
capped = pytest.mark.skipif(
    not hasattr(tasks.base, "MAX_SIZE"), reason="Task.check_size has no upper bound here yet"
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A profile, a store holding its finished runs and their kept weights, and an empty folder
    (a --checkpoints without weights)."""
    folder = tmp_path_factory.mktemp("evaluate_input")
    profile = folder / "tiny.yaml"
    profile.write_text(PROFILE)
    store = folder / "store.sqlite"
    argv = ["--profile", str(profile), "--store", str(store), "--jobs", "1", "--no-report"]
    assert run_suite.main(argv) == 0
    sqlite3.connect(store).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    (folder / "empty").mkdir()
    return folder, profile, store


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(argv, message, store, capsys) -> str:
    """Run run_suite with `argv`: exit 2, one stderr line holding `message`, `store` unchanged."""
    before = sha(store)
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in lines[0]
    assert sha(store) == before, "the store must not change"
    return lines[0]


# (case, extra evaluate argv builder(folder, profile), expected fragment of the one line)
EVALUATE = [
    ("--at axis the task lacks", lambda f, p: ["--at", "repeats=5"], "--at repeats=5: no chosen"),
    (
        "--joint axis the task lacks",
        lambda f, p: ["--joint", "length=20,repeats=3"],
        "--joint length=20,repeats=3: no chosen run's task has the axis 'repeats' "
        "(known axes: copy: length)",
    ),
    ("--at beyond 64 bits", lambda f, p: ["--at", f"length={HUGE}"], "--at 'length=1180591"),
    (
        "--at beyond MAX_INT",
        lambda f, p: ["--at", "length=2147483648"],
        "sizes must be in [1, 2147483647], got 2147483648",
    ),
    ("--at zero", lambda f, p: ["--at", "length=0"], "--at 'length=0'"),
    ("--at text", lambda f, p: ["--at", "length=5,x"], "--at 'length=5,x': expected AXIS=N"),
    ("--joint axis twice", lambda f, p: ["--joint", "length=3,length=4"], "an axis is set twice"),
    ("--trace-at beyond 64 bits", lambda f, p: ["--trace-at", f"length={HUGE}"], "--trace-at 'le"),
    (
        "--trace-at axis the task lacks",
        lambda f, p: ["--trace-at", "repeats=5"],
        "--trace-at repeats=5: no chosen run's task has the axis 'repeats'",
    ),
    ("--trace-at garbage", lambda f, p: ["--trace-at", "xyz"], "--trace-at 'xyz': expected"),
    ("--trace-at empty", lambda f, p: ["--trace-at", ""], "--trace-at '': expected"),
    (
        "--at without kept weights",
        lambda f, p: ["--at", "length=5", "--checkpoints", str(f / "empty")],
        f"has no kept weights at {{empty}}{os.sep}",
    ),
    (
        "--trace-at without kept weights",
        lambda f, p: ["--trace-at", "length=5", "--checkpoints", str(f / "empty")],
        f"has no kept weights at {{empty}}{os.sep}",
    ),
    (
        "--trace-at pictures under a file",
        lambda f, p: ["--trace-at", "length=5", "--report-dir", str(p / "rep")],
        "cannot write memory pictures under",
    ),
    pytest.param(
        "--at too long for the task",
        lambda f, p: ["--at", f"length={BIG}"],
        f"--at length={BIG}: copy: length must be",
        marks=capped,
    ),
    pytest.param(
        "--trace-at too long for the task",
        lambda f, p: ["--trace-at", f"length={BIG}"],
        f"--trace-at length={BIG}: copy: length must be",
        marks=capped,
    ),
]


@pytest.mark.parametrize("case,argv,message", EVALUATE, ids=[str(c[0]) for c in EVALUATE])
def test_bad_evaluate_input(case, argv, message, setup, capsys):
    folder, profile, store = setup
    line = refused(
        ["evaluate", "--profile", str(profile), "--store", str(store), "--no-report"]
        + argv(folder, profile),
        message.replace("{empty}", str(folder / "empty")),
        store,
        capsys,
    )
    if "kept weights" in message:  # the run is named, beside the folder
        run_ids = [r for (r,) in sqlite3.connect(store).execute("SELECT run_id FROM runs")]
        assert any(f"run {run_id} " in line for run_id in run_ids), line


def test_a_size_the_task_refuses_is_refused_before_any_row(setup, capsys, monkeypatch):
    """Task.check_size decides, whatever its bounds: here one that refuses lengths above 6."""
    folder, profile, store = setup
    original = Copy.check_size

    def strict(self, size):
        original(self, size)
        if size.get("length", 0) > 6:
            raise ValueError(f"length must be at most 6, got {size['length']}")

    monkeypatch.setattr(Copy, "check_size", strict)
    base = ["evaluate", "--profile", str(profile), "--store", str(store), "--no-report"]
    refused(base + ["--at", "length=5,7"], "--at length=7: copy: length must be", store, capsys)
    refused(base + ["--trace-at", "length=9"], "--trace-at length=9: copy:", store, capsys)


def test_parse_points_and_shape():
    assert parse_points(["length=5,5, 9"], ["length=2,repeats=3"]) == [
        {"length": 5},
        {"length": 9},
        {"length": 2, "repeats": 3},
    ]
    assert parse_shape("length=20,repeats=10") == {"length": 20, "repeats": 10}
    assert parse_shape("length=2147483647") == {"length": 2**31 - 1}
    for bad in ("length=2147483648", "length", "=5", "length=5,6", "length=-1"):
        with pytest.raises(ValueError, match="--trace-at"):
            parse_shape(bad)
