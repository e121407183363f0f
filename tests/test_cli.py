"""The command line: subcommands with their own --help, the flag form planning the same runs,
contradicting modes as errors, and `evaluate` adding points to finished runs without retraining."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import run_suite
from ntm_bench.benchmarks.harness.cli import COMMANDS, parse
from conftest import TINY_TASKS, tiny_profile
from ntm_bench.benchmarks.harness import trained
from ntm_bench.results.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_its_own_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: run_suite.py {command}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags,command",
    [
        ([], "run"),
        (["--report"], "report"),
        (["--bench"], "bench"),
        (["--params"], "params"),
        (["--profile", "ci", "--check"], "run"),
    ],
)
def test_the_flag_form_picks_the_command(flags, command):
    assert parse(flags, "", "").command == command


def test_the_flag_form_and_run_plan_the_same_runs(tmp_path):
    profile = tiny_profile(tmp_path)
    plans = []
    for argv in (
        ["--profile", profile, "--seeds", "1,2"],
        ["run", "--profile", profile, "--seeds", "1,2"],
        ["check", "--profile", profile, "--seeds", "1,2"],
    ):
        plans.append([s.run_id for s in run_suite.build_plan(parse(argv, "", ""))[1]])
    assert plans[0] == plans[1] == plans[2] and len(plans[0]) == 4
    assert parse(["check"], "", "").profile == "ci" and parse(["check"], "", "").check


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--bench", "--report"], "--report and --bench are separate commands"),
        (["--params", "--check"], "--check does not go with --params"),
        (["--bench", "--update-baseline"], "--update-baseline does not go with --bench"),
        (["report", "--check"], "needs --published"),
        (["--json", "x.json"], "--json does not go with training"),
        (["evaluate", "--profile", "quick"], "evaluate needs --at"),
        (["evaluate", "--at", "length=abc"], "--at 'length=abc': expected AXIS=N"),
        (["evaluate", "--joint", "length=3"], "a joint point sets two or more axes"),
    ],
)
def test_contradicting_or_incomplete_commands_exit_2(argv, message, capsys, tmp_path):
    store = tmp_path / "s.sqlite"
    Store(store).close()
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main([*argv, "--store", str(store)] if argv[0] == "evaluate" else argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    profile = tiny_profile(
        folder, {"steps": 6, "eval_interval": 3, "log_interval": 2, "checkpoint_interval": 4}
    )
    store = folder / "s.sqlite"
    assert (
        run_suite.main(["--profile", profile, "--store", str(store), "--jobs", "1", "--no-report"])
        == 0
    )
    return folder, profile, store


def test_evaluate_adds_points_and_changes_no_existing_row(finished, capsys):
    folder, profile, store = finished
    before = Store(store).evals()
    runs_before = Store(store).runs()
    assert (
        run_suite.main(
            [
                "evaluate",
                "--profile",
                profile,
                "--store",
                str(store),
                "--models",
                "ntm",
                "--at",
                "length=5,9",
                "--no-report",
            ]
        )
        == 0
    )
    # length=5 was there already
    assert "2 evaluation rows added for 2 of 2 runs" in capsys.readouterr().out
    after = Store(store).evals()
    key = ["run_id", "point"]
    kept = after.merge(before[key], on=key)
    pd.testing.assert_frame_equal(
        kept.sort_values(key).reset_index(drop=True), before.sort_values(key).reset_index(drop=True)
    )
    added = after[after.point == "length=9"]
    # memory 6 < 9 vectors
    assert sorted(added.model) == ["ntm", "ntm"] and added.beyond_memory.all()
    pd.testing.assert_frame_equal(Store(store).runs(), runs_before)


def test_evaluate_scores_like_training_does(finished):
    """A point added afterwards equals the one the trained run stored (length=5, same fixed set)."""
    folder, profile, store = finished
    before = Store(store).evals().set_index(["run_id", "point"])
    db = Store(store)
    db.db.execute("DELETE FROM evals WHERE point = 'length=5'")
    assert (
        run_suite.main(
            [
                "evaluate",
                "--profile",
                profile,
                "--store",
                str(store),
                "--at",
                "length=5",
                "--no-report",
            ]
        )
        == 0
    )
    after = Store(store).evals().set_index(["run_id", "point"])
    for index in [i for i in before.index if i[1] == "length=5"]:
        assert after.loc[index, "cost_bits"] == pytest.approx(
            before.loc[index, "cost_bits"], rel=1e-5
        )


def test_evaluate_names_a_pruned_run_and_draws_memory_pictures(finished, capsys):
    folder, profile, store = finished
    runs = Store(store).runs()
    victim = runs[runs.model == "lstm"].run_id.iloc[0]
    trained.main(["prune", "--store", str(store), "--run-id", victim])
    capsys.readouterr()
    assert (
        run_suite.main(
            [
                "evaluate",
                "--profile",
                profile,
                "--store",
                str(store),
                "--models",
                "lstm",
                "--at",
                "length=7",
                "--no-report",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert f"skipped: run {victim} (done) has no kept weights" in captured.err
    ntm = runs[runs.model == "ntm"].run_id.iloc[0]
    assert (
        run_suite.main(
            [
                "evaluate",
                "--profile",
                profile,
                "--store",
                str(store),
                "--run-id",
                ntm,
                "--trace-at",
                "length=12",
            ]
        )
        == 0
    )
    picture = capsys.readouterr().out.split("memory picture: ")[1].strip()
    assert picture.endswith(".png") and ntm in picture


@pytest.mark.parametrize(
    "module,argv",
    [
        ("run_suite.py", ["--jobs", "abc"]),
        ("run_suite.py", ["--frobnicate"]),
        ("run_suite.py", ["report", "extra"]),
        ("run_suite.py", ["--executor", "spark"]),
        ("run_suite.py", ["--set"]),
        ("-m benchmarks.harness.published", ["merge"]),
        ("-m benchmarks.harness.trained", ["delete"]),
        ("-m benchmarks.harness.reproduce", ["x.json", "--steps", "abc"]),
        ("-m benchmarks.speed_suite.versus", ["HEAD", "--batches"]),
        ("-m benchmarks.speed_suite.cost", ["--frob"]),
        ("-m benchmarks.speed_suite.cost", ["--round-s", "nan"]),
        ("-m benchmarks.speed_suite.cost", ["--rounds", "0"]),
    ],
)
def test_every_command_line_refuses_bad_flags_in_one_line(module, argv):
    done = subprocess.run(
        [sys.executable, *module.split(), *argv], cwd=ROOT, capture_output=True, text=True
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "error:" in lines[0], done.stderr


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--trace-at", "repeats=5"], "--trace-at repeats=5: no chosen run's task has the axis"),
        (["--at", "repeats=5"], "--at repeats=5: no chosen run's task has the axis 'repeats'"),
        (["--at", f"length={2**70}"], f"--at 'length={2**70}': sizes must be in [1, 2147483647]"),
    ],
)
def test_evaluate_refuses_points_in_a_real_process(argv, message, finished):
    """One line, exit 2, no traceback, the store's bytes unchanged (tests/test_evaluate_input.py
    has the whole table)."""
    import hashlib
    import sqlite3

    folder, profile, store = finished
    # earlier tests' writes still in the WAL would reach the file when the process closes it
    sqlite3.connect(store).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    done = subprocess.run(
        [sys.executable, "run_suite.py", "evaluate", "--profile", profile, "--store", str(store)]
        + ["--no-report", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before


def test_versus_refuses_a_nan_round_in_a_real_process():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed_suite.versus", "HEAD", "--round-s", "nan"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--round-s" in lines[0], done.stderr
    assert not done.stdout


def test_a_report_folder_under_a_file_is_a_report_error(tmp_path):
    from ntm_bench.reports.build import prepare
    from ntm_bench.reports.data import ReportError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot write the report in .*: Not a directory"):
        prepare(blocker / "out")


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"run_suite.py {version('ntm-bench')}"


def test_a_checkout_that_was_never_installed_says_how_to_install_it():
    # -S: no site-packages, so neither ntm_bench nor torch; the check comes before any import
    done = subprocess.run(
        [sys.executable, "-S", "run_suite.py", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("run_suite.py: error: the ntm_bench package is not installed")
    assert "pip install -c constraints-cpu.txt -e '.[dev]'" in lines[0]


def test_a_second_checkout_refuses_to_run_the_installed_ones_code(tmp_path):
    # a worktree at another commit, run with this Python (whose ntm_bench is this checkout)
    shutil.copy(ROOT / "run_suite.py", tmp_path / "run_suite.py")
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run_suite.py"), "--help"], capture_output=True, text=True
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"this checkout is {tmp_path.resolve()}" in lines[0]
    assert f"this Python's ntm_bench is {ROOT.resolve()}" in lines[0]


def git(folder, *args):
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def test_a_run_names_its_codes_commit_and_whether_the_code_differed_from_it(tmp_path):
    from ntm_bench.benchmarks.harness.runner import CODE_COMMIT, git_sha

    assert git_sha(tmp_path) is None, "not a checkout"
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("ignored.py\n")
    (tmp_path / "model.py").write_text("x = 1\n")
    (tmp_path / "notes.md").write_text("notes\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    assert len(commit) == 12 and git_sha(tmp_path) == commit
    (tmp_path / "notes.md").write_text("other notes\n")  # not code
    (tmp_path / "ignored.py").write_text("y = 2\n")
    assert git_sha(tmp_path) == commit
    (tmp_path / "model.py").write_text("x = 2\n")
    assert git_sha(tmp_path) == commit + "+dirty"
    git(tmp_path, "checkout", "-q", "model.py")
    (tmp_path / "new_model.py").write_text("z = 3\n")
    assert git_sha(tmp_path) == commit + "+dirty"
    # a folder inside a checkout is not a checkout: an installed wheel in a venv inside a repo
    (tmp_path / "site").mkdir()
    assert git_sha(tmp_path / "site") is None
    # this process's runs name the commit of the code it loaded: this checkout's, read at import
    assert CODE_COMMIT == git_sha()


RAW = {
    "train": {"steps": 100, "lr": 1e-3},
    "models": {
        "ntm": {"read_heads": 1, "train": {"lr": 3e-4}, "per_task": {"sort": {"read_heads": 5}}},
        "lstm": {"per_task": {"copy": {"train": {"steps": 7}}}},
    },
    "tasks": {"copy": {"train": {"steps": 50}}, "sort": {"width": 8}},
}


@pytest.mark.parametrize(
    "assignment,found",
    [
        # the profile's train < tasks.<t>.train < models.<m>.train < models.<m>.per_task.<t>.train
        (
            "train.steps=300",
            ["tasks.copy.train.steps (50)", "models.lstm.per_task.copy.train.steps (7)"],
        ),
        ("train.lr=1", ["models.ntm.train.lr (0.0003)"]),
        ("tasks.copy.train.steps=9", ["models.lstm.per_task.copy.train.steps (7)"]),
        ("tasks.sort.train.steps=9", []),
        ("models.lstm.train.steps=9", ["models.lstm.per_task.copy.train.steps (7)"]),
        # a model's parameters: models.<m> < models.<m>.per_task.<t>
        ("models.ntm.read_heads=2", ["models.ntm.per_task.sort.read_heads (5)"]),
        ("models.ntm.per_task.sort.read_heads=3", []),
        ("train.batch_size=8", []),
        ("seeds=[1]", []),
    ],
)
def test_an_override_that_some_runs_do_not_take_is_found(assignment, found):
    from ntm_bench.benchmarks.harness.profile_file import shadowing

    assert shadowing(RAW, assignment) == found


def test_the_command_line_says_which_runs_an_override_misses(tmp_path, capsys):
    copy = {**TINY_TASKS["copy"], "train": {"steps": 3}}
    profile = tiny_profile(tmp_path, tasks={"copy": copy})
    argv = ["params", "--profile", str(profile), "--models", "lstm", "--tasks", "copy"]
    assert run_suite.main([*argv, "--set", "train.steps=2"]) == 0
    note = capsys.readouterr().err
    assert note.startswith("note: --set train.steps=2 does not reach the runs of")
    assert "tasks.copy.train.steps (3)" in note and note.count("\n") == 1
    assert run_suite.main([*argv, "--set", "train.lr=2"]) == 0
    assert "note:" not in capsys.readouterr().err
    # bad input after it: the error stays the one line, and no note comes before it
    bad = ["run", "--profile", profile, "--set", "train.steps=2", "--store", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        run_suite.main([*bad, "--models", "lstm"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "note" not in err
