"""Shared fixtures and helpers: tests run single-threaded, like the suite's workers, so results are
exact; the one tiny profile the pipeline tests train (`tiny_profile`); a store snapshot for
comparing an interrupted suite with an uninterrupted one (`snapshot`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ntm_bench.benchmarks.process.threads import intra_op_threads
from ntm_bench.models import MODELS
from ntm_bench.tasks import TASKS

# the package's own models and tasks, read before anything loads a plugin (which adds to them)
BUILTIN_MODELS = tuple(MODELS)
BUILTIN_TASKS = tuple(TASKS)


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def interrupted_at_first_checkpoint(call) -> list:
    """Run `call()` with checkpoint writes that succeed and then raise KeyboardInterrupt, as a
    user's Ctrl-C right after a checkpoint would; returns the steps that were saved."""
    from ntm_bench.benchmarks.harness import runner

    saved = []
    original = runner.save_checkpoint

    def crash(path, snap):
        original(path, snap)
        saved.append(snap["step"])
        raise KeyboardInterrupt

    runner.save_checkpoint = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        runner.save_checkpoint = original
    return saved


# The tiny profile: an NTM and an LSTM that train a 3-bit copy task in seconds. Tests that depend
# on a cadence (how many points, which kill points) pass their own `train` keys.
TINY_TRAIN = {
    "steps": 12,
    "batch_size": 4,
    "eval_interval": 6,
    "eval_size": 8,
    "log_interval": 3,
    "checkpoint_interval": 5,
    "lr": 0.01,
}
TINY_MODELS = {
    "ntm": {"controller_size": 8, "memory_size": 6, "memory_width": 4},
    "lstm": {"hidden_size": 8, "num_layers": 1},
}
TINY_TASKS = {"copy": {"width": 3, "max_length": 3, "eval": {"length": [2, 5]}}}


def tiny_profile(
    folder,
    train: dict | None = None,
    tasks: dict | None = None,
    name: str = "tiny",
    models: dict | None = None,
    seeds: tuple = (1, 2),
) -> str:
    """Write the tiny profile (`seeds`, 1 and 2 unless told; `train` keys override TINY_TRAIN,
    `tasks` and `models` add or replace entries) to folder/<name>.yaml and return its path."""
    text = yaml.safe_dump(
        {
            "seeds": list(seeds),
            "train": {**TINY_TRAIN, **(train or {})},
            "models": {**TINY_MODELS, **(models or {})},
            "tasks": {**TINY_TASKS, **(tasks or {})},
        },
        sort_keys=False,
    )
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def snapshot(store_path):
    """Everything in a store but timings: runs' results, curves and evals, sorted (the crash tests
    compare an interrupted-then-rerun suite with an uninterrupted one by it)."""
    from ntm_bench.results.store import Store

    store = Store(store_path)
    runs = store.runs()[
        ["run_id", "status", "converged_step", "final_cost_bits", "final_bit_errors", "n_params"]
    ]
    curves = store.curves().drop(columns=["wall_s"])
    evals = store.evals()
    store.close()
    return runs.to_dict("records"), curves.to_dict("records"), evals.to_dict("records")


ROOT = Path(__file__).resolve().parent.parent


def suite_process(profile, store, *extra, env=None) -> subprocess.CompletedProcess:
    """run_suite.py in a subprocess with one job (so fault counters such as NTM_BENCH_KILL_AT
    are that process's), no report, and `env` added to the environment."""
    command = [
        sys.executable,
        str(ROOT / "run_suite.py"),
        "--profile",
        str(profile),
        "--store",
        str(store),
        "--jobs",
        "1",
        "--no-report",
        *extra,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
