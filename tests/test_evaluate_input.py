"""Bad input to `evaluate`, `check` and `bench`, table-driven: exit code 2, one line on stderr
naming the flag, file or run at fault, and the store's bytes unchanged: nothing scored, trained or
measured first. Also the checks behind them (evaluate_kept.parse_points / parse_shape / prepare,
baseline.load_baseline, speed_suite.checks.check_destinations) called directly."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess

from pathlib import Path

import pytest

import run_suite
from conftest import tiny_profile
from ntm_bench.benchmarks.harness import baseline
from ntm_bench.benchmarks.harness.config import ConfigError
from ntm_bench.benchmarks.harness.evaluate_kept import parse_points, parse_shape
from ntm_bench.benchmarks.speed_suite import bench as speed_bench
from ntm_bench.benchmarks.speed_suite import checks as speed_checks
from ntm_bench.tasks.copy import Copy

HUGE = "1180591620717411303424"  # 2**70: beyond every integer bound
BIG = "1000000000"  # within MAX_INT: the task's own check_size bounds it (tasks.base.MAX_SIZE)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A profile, a store holding its finished runs and their kept weights, and an empty folder
    (a --checkpoints without weights)."""
    folder = tmp_path_factory.mktemp("evaluate_input")
    profile = Path(tiny_profile(folder, seeds=[1]))
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
    ("--at underscore", lambda f, p: ["--at", "length=1_0"], "'1_0' is not one"),
    ("--at fullwidth digit", lambda f, p: ["--at", "length=\uff15"], "is not one"),
    ("--trace-at plus sign", lambda f, p: ["--trace-at", "length=+5"], "'+5' is not one"),
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
        "is a file, so nothing can be made under it",
    ),
    pytest.param(
        "--at too long for the task",
        lambda f, p: ["--at", f"length={BIG}"],
        f"--at length={BIG}: copy: length must be",
    ),
    pytest.param(
        "--trace-at too long for the task",
        lambda f, p: ["--trace-at", f"length={BIG}"],
        f"--trace-at length={BIG}: copy: length must be",
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


# -- check: the baseline is read before anything trains -------------------------------------


def good_baseline(store) -> dict:
    runs = sqlite3.connect(store).execute("SELECT model, task, seed, run_id FROM runs").fetchall()
    entries = {
        f"{m}/{t}/{s}": {"run_id": r, "status": "done", "converged_step": None}
        for m, t, s, r in runs
    }
    return {"profile": "tiny", "tolerance_factor": 1.5, "runs": entries}


def mutated(change):
    def build(store):
        data = good_baseline(store)
        change(data)
        return json.dumps(data)

    return build


# (case, baseline file text builder(store) or None for no file, expected fragment)
CHECK = [
    ("no baseline", None, "no baseline at {dir}"),
    ("not JSON", lambda s: '{"runs": {\n', "baseline {file} cannot be read"),
    ("not UTF-8", lambda s: b"\xff\xfe{}", "baseline {file} cannot be read"),
    ("a list", lambda s: "[]", "baseline {file}: expected an object with a 'runs' object"),
    ("runs a list", lambda s: '{"runs": []}', "expected an object with a 'runs' object"),
    (
        "another profile's",
        mutated(lambda d: d.update(profile="ci")),
        "baseline {file}: 'profile' is 'ci'",
    ),
    (
        "an entry without converged_step",
        mutated(lambda d: d["runs"]["lstm/copy/1"].pop("converged_step")),
        "runs.lstm/copy/1: missing 'converged_step'",
    ),
    (
        "a text step",
        mutated(lambda d: d["runs"]["lstm/copy/1"].update(converged_step="12")),
        "runs.lstm/copy/1.converged_step: expected a step >= 0 or null, got '12'",
    ),
    (
        "a negative step",
        mutated(lambda d: d["runs"]["ntm/copy/1"].update(converged_step=-3)),
        "runs.ntm/copy/1.converged_step",
    ),
    (
        "a numeric run_id",
        mutated(lambda d: d["runs"]["ntm/copy/1"].update(run_id=7)),
        "runs.ntm/copy/1.run_id: expected text",
    ),
]


@pytest.mark.parametrize("case,text,message", CHECK, ids=[c[0] for c in CHECK])
@pytest.mark.parametrize("extra", [[], ["--seeds", "13", "--models", "lstm"]], ids=["done", "new"])
def test_bad_baselines_stop_check_before_training(
    case, text, message, extra, setup, capsys, monkeypatch, tmp_path
):
    """`new` asks for a run the store lacks: it would train (and change the store) first."""
    folder, profile, store = setup
    monkeypatch.setattr(baseline, "BASELINE_DIR", tmp_path)
    path = tmp_path / "tiny.json"
    if text is not None:
        data = text(store)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    argv = ["check", "--profile", str(profile), "--store", str(store), "--no-report", *extra]
    refused(
        argv + ["--jobs", "1", "--checkpoints", str(tmp_path / "ck")],
        message.format(dir=tmp_path, file=path),
        store,
        capsys,
    )
    assert not (tmp_path / "ck").exists(), "nothing may train"


def test_a_written_baseline_loads_and_checks(setup, monkeypatch, tmp_path, capsys):
    folder, profile, store = setup
    monkeypatch.setattr(baseline, "BASELINE_DIR", tmp_path)
    (tmp_path / "tiny.json").write_text(json.dumps(good_baseline(store)))
    assert baseline.load_baseline("tiny")["runs"]
    argv = ["check", "--profile", str(profile), "--store", str(store), "--no-report"]
    assert run_suite.main(argv) == 0
    assert "check: 2 ok, 0 regressed" in capsys.readouterr().out


def test_check_baseline_reports_an_unreadable_file_in_one_line(tmp_path, capsys):
    (tmp_path / "p.json").write_text("{")
    assert baseline.check_baseline("p", None, [], tmp_path) == 2
    captured = capsys.readouterr()
    assert not captured.out and captured.err.count("\n") == 1 and "p.json" in captured.err


# -- bench: the store, --json and --threads are checked before measuring -------------------------


@pytest.fixture
def read_only(setup, tmp_path):
    """A copy of the store that opens but refuses writes (chattr +i as root, else mode 0444)."""
    path = tmp_path / "ro.sqlite"
    shutil.copy(setup[2], path)
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a file read-only for root here (chattr +i)")
        yield path
        subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        yield path
        path.chmod(0o644)


@pytest.fixture
def no_measuring(monkeypatch):
    """A check that did not fire must not cost minutes of measuring."""

    def measured(*args, **kwargs):
        raise AssertionError("bench measured before refusing its input")

    monkeypatch.setattr(speed_bench, "run_bench", measured)


BENCH = [
    ("threads zero", lambda f, p: ["--threads", "0"], "--threads must be"),
    ("threads huge", lambda f, p: ["--threads", "2147483648"], "--threads must be a whole number"),
    ("threads many", lambda f, p: ["--threads", "5000"], "from 1 to 1024, got 5000"),
    ("json under a file", lambda f, p: ["--json", str(p / "x.json")], "{p} is a file, so nothing"),
    ("json a folder", lambda f, p: ["--json", str(f)], "is a folder, expected a file"),
]


@pytest.mark.parametrize("case,argv,message", BENCH, ids=[c[0] for c in BENCH])
def test_bad_bench_input(case, argv, message, setup, capsys, no_measuring, tmp_path):
    folder, profile, store = setup
    refused(
        ["bench", "--bench-profile", "quick", "--models", "lstm", "--store", str(store)]
        + argv(folder, profile),
        message.replace("{p}", str(profile)),
        store,
        capsys,
    )
    # a new store is not created when another flag is wrong
    new = tmp_path / "new.sqlite"
    with pytest.raises(SystemExit):
        run_suite.main(["bench", "--models", "lstm", "--store", str(new), *argv(folder, profile)])
    assert not new.exists()


def test_a_read_only_store_is_refused_before_measuring(read_only, capsys, no_measuring, setup):
    argv = ["bench", "--bench-profile", "quick", "--models", "lstm", "--store", str(read_only)]
    # run_suite's path check comes first; check_destinations refuses it the same way when
    # run_bench is called on its own (test_check_destinations_directly)
    refused(argv, f"--store {read_only} is not writable", read_only, capsys)
    folder, profile, _ = setup
    argv = ["evaluate", "--profile", str(profile), "--store", str(read_only), "--no-report"]
    refused(
        argv + ["--at", "length=7", "--checkpoints", str(folder / "checkpoints")],
        f"--store {read_only} is not writable",
        read_only,
        capsys,
    )


def test_check_destinations_directly(setup, tmp_path):
    folder, profile, store = setup
    speed_checks.check_destinations(str(store), str(tmp_path / "out" / "speed.json"), 1)
    for store_path, json_path, threads, message in [
        (None, None, 0, "--threads"),
        (None, None, True, "--threads"),
        (None, str(profile / "a" / "b.json"), 1, "is a file, so nothing can be made under it"),
        (str(profile), None, 1, "cannot open results store"),
    ]:
        with pytest.raises(ConfigError, match=message):
            speed_checks.check_destinations(store_path, json_path, threads)
    assert not (tmp_path / "out").exists()


def exit_code(argv) -> int:
    """run_suite.main's exit status, returned or raised."""
    try:
        return run_suite.main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--versus", "HEAD", "--cost", "quick"], "--versus and --cost are separate modes"),
        (["--versus", "HEAD", "--json", "x.json"], "--json writes the table's rows"),
        (["--cost", "nope"], "bench: error: unknown profile 'nope'"),
        (["--cost", "quick", "--models", "gru"], "bench: error: unknown model"),
        (["--versus", "no-such-revision"], "bench: error: versus: 'no-such-revision' is not"),
        (["--versus", "HEAD", "--models", "gru"], "bench: error: versus: --models: unknown model"),
    ],
)
def test_bad_bench_modes_are_refused_in_one_line(argv, message, capsys, no_measuring, tmp_path):
    assert exit_code(["bench", "--store", str(tmp_path / "s.sqlite"), *argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "x.json").exists()


def test_bench_modes_run_the_speed_suites_modules(monkeypatch):
    """`bench --versus REV` and `bench --cost PROFILE` are versus.py's and cost.py's command
    lines, under bench's name, with --models passed on (and their own defaults without it)."""
    from ntm_bench.benchmarks.speed_suite import cost, versus

    calls = []
    monkeypatch.setattr(versus, "main", lambda argv, prog: calls.append(argv + [prog]) or 0)
    monkeypatch.setattr(cost, "main", lambda argv, prog: calls.append(argv + [prog]) or 0)
    assert run_suite.main(["bench", "--versus", "HEAD~1"]) == 0
    assert run_suite.main(["--bench", "--cost", "quick", "--models", "lstm"]) == 0
    assert calls == [
        ["HEAD~1", "--models", "ntm,dnc", "run_suite.py bench"],
        ["--profile", "quick", "--models", "lstm", "run_suite.py bench"],
    ]
