"""Ctrl-C mid-run: a real SIGINT to a suite training a batched seed group (or a single run)
checkpoints at the next step boundary, and the rerun resumes there and equals an uninterrupted
suite. The child is paused at a known step by the fault hook (benchmarks/process/faults.py:
NTM_BENCH_PAUSE_AT), which announces itself on stderr and waits for the signal, so the test never
races a running child with a sleep."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import run_suite
from ntm_bench.benchmarks.harness import runner
from ntm_bench.benchmarks.harness.cadence import CHECKPOINT_FORMAT
from ntm_bench.benchmarks.harness.config import load_profile
from ntm_bench.benchmarks.process.faults import PAUSE_ENV, PAUSED
from ntm_bench.benchmarks.harness.plan import plan_runs
from conftest import snapshot, tiny_profile

ROOT = Path(__file__).resolve().parent.parent
# 5: inside a log window (log_interval 2) and after a validation (eval_interval 4)
STEPS, PAUSE_AT = (
    12,
    5,
)

# no periodic checkpoint (1000): the one a Ctrl-C leaves is the only one
TRAIN = {
    "steps": STEPS,
    "batch_size": 3,
    "eval_interval": 4,
    "eval_size": 6,
    "log_interval": 2,
    "checkpoint_interval": 1000,
}


def interrupted_suite(args: list[str]) -> subprocess.CompletedProcess:
    """run_suite.py in a subprocess, paused after step PAUSE_AT until this sends it a SIGINT."""
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "run_suite.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, PAUSE_ENV: f"step:{PAUSE_AT}"},
    )
    try:
        before = []
        for line in child.stderr:  # until the pause is announced; EOF (the child ended) fails below
            before.append(line)
            if line.startswith(PAUSED):
                break
        else:
            pytest.fail("the suite never paused:\n" + "".join(before))
        child.send_signal(signal.SIGINT)
        _, rest = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    return subprocess.CompletedProcess(child.args, child.returncode, "", "".join(before) + rest)


@pytest.mark.parametrize(
    "model,seeds", [("ntm", [1, 2]), ("lstm", [1])], ids=["seed-group", "alone"]
)
def test_sigint_checkpoints_at_the_next_step_and_the_rerun_equals_uninterrupted(
    model, seeds, tmp_path, monkeypatch
):
    profile = tiny_profile(tmp_path, train=TRAIN)
    args = [
        "--profile",
        str(profile),
        "--jobs",
        "1",
        "--no-report",
        "--models",
        model,
        "--tasks",
        "copy",
        "--seeds",
        ",".join(map(str, seeds)),
    ]
    (tmp_path / "reference").mkdir()
    assert run_suite.main([*args, "--store", str(tmp_path / "reference" / "s.sqlite")]) == 0

    store = tmp_path / "interrupted.sqlite"
    out = interrupted_suite([*args, "--store", str(store)])
    assert out.returncode == 130 and "interrupted" in out.stderr, out.stderr
    specs = plan_runs(load_profile(str(profile)), [model], ["copy"], seeds)
    checkpoints = tmp_path / "checkpoints"
    expected = (
        runner.group_checkpoint(checkpoints, specs)
        if len(specs) > 1
        else runner.checkpoint_path(checkpoints, specs[0].run_id)
    )
    assert [p for p in checkpoints.glob("*.pt") if not p.name.endswith(".final.pt")] == [expected]
    saved = torch.load(expected, weights_only=True)
    # the step boundary after the signal
    assert saved["step"] == PAUSE_AT and 0 < saved["step"] < STEPS
    # one checkpoint format for a run and a seed group: a partly averaged log window kept per seed
    assert saved["format"] == CHECKPOINT_FORMAT and len(saved["generators"]) == len(specs)
    assert [w[2] for w in saved["windows"]] == [PAUSE_AT % 2] * len(specs)

    resumed_from = []
    load = runner.load_checkpoint

    def spied(path):
        snap = load(path)
        resumed_from.append((path, snap and snap["step"]))
        return snap

    monkeypatch.setattr(runner, "load_checkpoint", spied)
    assert run_suite.main([*args, "--store", str(store)]) == 0
    assert resumed_from == [(expected, PAUSE_AT)]
    assert snapshot(store) == snapshot(tmp_path / "reference" / "s.sqlite")
    assert not [
        p for p in checkpoints.glob("*.pt") if not p.name.endswith(".final.pt")
    ]  # kept weights stay


@pytest.mark.parametrize("saved", [{"step": 3, "window": (0.0, 0.0, 0)}, {"format": 9}, [1, 2]])
def test_a_checkpoint_of_another_format_is_an_error_that_names_it_and_is_kept(
    saved, tmp_path, capsys
):
    """An older version's checkpoint (format 1 had no "format" key) is not read by a second
    reader: the run fails with one line naming the file and the formats, and the file stays."""
    profile = tiny_profile(tmp_path, train=TRAIN)
    (spec,) = plan_runs(load_profile(str(profile)), ["lstm"], ["copy"], [1])
    path = runner.checkpoint_path(tmp_path / "checkpoints", spec.run_id)
    path.parent.mkdir()
    torch.save(saved, path)
    args = ["--profile", str(profile), "--jobs", "1", "--no-report", "--models", "lstm"]
    code = run_suite.main(
        [*args, "--tasks", "copy", "--seeds", "1", "--store", str(tmp_path / "s")]
    )
    assert code == 1
    out = capsys.readouterr()
    found = saved.get("format", 1) if isinstance(saved, dict) else None
    assert f"checkpoint {path} has format {found}" in out.out + out.err
    assert f"reads format {CHECKPOINT_FORMAT} only" in out.out + out.err
    assert path.exists()
