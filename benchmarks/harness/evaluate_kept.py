"""Evaluate finished runs at new generalization points without retraining: each run's kept
weights (benchmarks.harness.trained) are loaded and scored on the same fixed evaluation sets a
trained run would get at those points; the rows are added to the store's evals table, never
replacing one that is there. Also the memory picture of any run at any size.

Everything asked is checked before the first row is written (prepare): each point against the
task of every chosen run (its axes, and the task's own Task.check_size; sizes at most MAX_INT
when parsed), the kept weights, the store's writability. Bad input is an EvaluateError, one line
naming the flag or run, which `run_suite.py evaluate` prints with exit code 2.

    python run_suite.py evaluate --profile quick --at length=200,500 [--models ntm] [--seeds 1]
        [--run-id ID]
    python run_suite.py evaluate --profile replicate --joint length=20,repeats=10
    python run_suite.py evaluate --profile quick --trace-at length=500 --run-id ID
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from ntm_bench.benchmarks.harness.config import ConfigError
from ntm_bench.benchmarks.harness.evaluate import generalization, point_name, trace
from ntm_bench.benchmarks.harness.values import MAX_INT
from ntm_bench.results.store import Store
from ntm_bench.benchmarks.harness.trained import (
    WeightsMissing,
    default_checkpoints,
    load_run,
    weights_path,
)
from ntm_bench.tasks.base import Task


class EvaluateError(ConfigError):
    """A point, run, folder or store that evaluate cannot use; raised before any row is written
    or picture drawn, the message one line naming the flag (or run, or file) at fault."""


class Outcome(NamedTuple):
    """What an evaluate call did: rows added, runs scored, runs skipped and why (one line each)."""

    added: int
    scored: int
    skipped: list


def parse_points(at: list[str], joint: list[str]) -> list[dict]:
    """`--at length=200,500` -> [{length: 200}, {length: 500}]; `--joint length=20,repeats=10`
    -> [{length: 20, repeats: 10}]; a point asked for twice is kept once. ValueError naming the
    flag on anything else."""
    points = []
    for text in at:
        axis, _, values = text.partition("=")
        if not axis.strip() or not values.strip():
            raise ValueError(
                f"--at {text!r}: expected AXIS=N[,N...] with positive integers, e.g. length=200,500"
            )
        points += [{axis.strip(): size("--at", text, v)} for v in values.split(",") if v.strip()]
    for text in joint:
        point = axes("--joint", text, "AXIS=N,AXIS=N, e.g. length=20,repeats=10")
        if len(point) < 2:
            raise ValueError(
                f"--joint {text!r}: a joint point sets two or more axes to positive integers"
            )
        points.append(point)
    unique = {point_name(p): p for p in points}  # --at length=5,5 scores length=5 once
    return list(unique.values())


def parse_shape(text: str) -> dict:
    """`--trace-at length=500` or `--trace-at length=20,repeats=10` -> the sizes of the memory
    picture; ValueError naming --trace-at."""
    return axes("--trace-at", text, "AXIS=N[,AXIS=N], e.g. length=500")


def axes(flag: str, text: str, expected: str) -> dict:
    """`length=20,repeats=10` -> {length: 20, repeats: 10}: each axis once, each size checked by
    `size`; ValueError naming `flag` and saying what was `expected` on anything else."""
    pairs = [part.partition("=") for part in text.split(",")]
    if any(not axis.strip() or not eq for axis, eq, _ in pairs):
        raise ValueError(f"{flag} {text!r}: expected {expected}")
    point = {axis.strip(): size(flag, text, value) for axis, _, value in pairs}
    if len(point) < len(pairs):
        raise ValueError(f"{flag} {text!r}: an axis is set twice")
    return point


def size(flag: str, text: str, value: str) -> int:
    """One size of a point: a whole number in [1, MAX_INT], the bound every integer of a profile
    gets (the store keeps it in 64 bits, and torch sizes overflow long before Python's ints do);
    ValueError naming the flag."""
    # ASCII digits only: int() also reads "1_0" as 10, "+5" and fullwidth or Arabic digits
    if not re.fullmatch(r"[0-9]+", value.strip()):
        raise ValueError(
            f"{flag} {text!r}: expected AXIS=N with whole numbers, {value.strip()!r} is not one"
        )
    number = int(value)
    if not 1 <= number <= MAX_INT:
        raise ValueError(f"{flag} {text!r}: sizes must be in [1, {MAX_INT}], got {number}")
    return number


def chosen_runs(store: Store, profile: str, models, tasks, seeds, run_ids):
    """The done runs of `profile` that pass the filters (None: no filter)."""
    runs = store.runs()
    runs = runs[(runs.profile == profile) & (runs.status == "done")]
    for column, wanted in (
        ("model", models),
        ("task", tasks),
        ("seed", seeds),
        ("run_id", run_ids),
    ):
        if wanted:
            runs = runs[runs[column].isin(wanted)]
    return runs


class Work(NamedTuple):
    """One chosen run that will be scored: its runs-table row, its task and its points."""

    run: tuple  # a row of runs.itertuples()
    task: Task
    points: list


def prepare(store: Store, runs, points: list[dict], checkpoints=None, flag=None):
    """Check a request against every chosen run before anything is written: (the Work to do,
    one line per run left out and why). Each point must fit the task of at least one run, along
    its axes and within the task's own check_size, and then fits all the runs that have its axes;
    a run without kept weights, or with none of the axes asked for, is left out. `flag` names
    every point in the messages (default: --at or --joint, by its number of axes). Raises
    EvaluateError for a point no chosen run can take, a value a task refuses, or nothing left."""
    folder = Path(checkpoints or default_checkpoints(store.path))
    tasks = [(run, run_task(run)) for run in runs.itertuples()]
    for point in points:
        check_point(point, tasks, flag or f"{'--joint' if len(point) > 1 else '--at'}")
    work, skipped = [], []
    for run, task in tasks:
        mine = [p for p in points if set(p) <= set(task.axes)]
        path = weights_path(folder, run.run_id)
        if not path.is_file():
            skipped.append(
                f"run {run.run_id} ({run.status}) has no kept weights at {path}: pruned, or "
                "trained elsewhere (--checkpoints); retrain it to get them back"
            )
        elif not mine:
            skipped.append(
                f"run {run.run_id} ({run.task}) has none of the axes asked for (its axes: "
                f"{', '.join(task.axes) or 'none'})"
            )
        else:
            work.append(Work(run, task, mine))
    if not work:
        raise EvaluateError(f"nothing to evaluate: {first_of(skipped)}")
    return work, skipped


def first_of(reasons: list[str]) -> str:
    """The first of several runs' reasons, and how many more there are: one line for them all."""
    more = len(reasons) - 1
    return reasons[0] + (f" (and {more} more chosen run{'s' * (more > 1)})" if more else "")


def run_task(run) -> Task:
    """The task a stored run was trained on, rebuilt from its config (no weights needed)."""
    from ntm_bench.benchmarks.harness.plan import RunSpec, described
    from ntm_bench.benchmarks.harness.plugins import build_task

    try:
        spec = RunSpec.from_config(json.loads(run.config_json), run.profile)
        return build_task(spec.task, **spec.task_params)
    except Exception as error:  # an old config or a plugin gone: one line naming the run
        raise EvaluateError(f"run {run.run_id} ({run.task}): {described(error)}") from None


def check_point(point: dict, tasks: list, flag: str) -> None:
    """`point` fits at least one of the (run, task) pairs by its axes, and each task that has
    them accepts its sizes (Task.check_size); EvaluateError naming `flag` and the point."""
    where = f"{flag} {point_name(point)}"
    fits = [(run, task) for run, task in tasks if set(point) <= set(task.axes)]
    if not fits:
        known = "; ".join(
            sorted({f"{run.task}: {', '.join(task.axes) or 'none'}" for run, task in tasks})
        )
        absent = [a for a in point if not any(a in task.axes for _, task in tasks)]
        what = f"the axis {absent[0]!r}" if absent else "all of these axes"
        raise EvaluateError(f"{where}: no chosen run's task has {what} (known axes: {known})")
    for run, task in fits:
        try:
            task.check_size(point)
        except (ValueError, TypeError) as error:
            raise EvaluateError(f"{where}: {run.task}: {error}") from None


def check_folder(folder: Path) -> None:
    """EvaluateError unless `folder` is or can become a folder that can be written."""
    from ntm_bench.benchmarks.process.destinations import check_destination

    try:
        check_destination("--report-dir", folder, "folder")
    except ValueError as error:
        raise EvaluateError(f"cannot write memory pictures: {error}") from None


def evaluate_runs(store: Store, runs, points: list[dict], checkpoints=None) -> Outcome:
    """Score every run at every point its task has the axes for; add the rows that are new.
    Everything is checked first (prepare; the store was checked writable when it opened, by
    results.schema.probe_write): EvaluateError before any row."""
    work, skipped = prepare(store, runs, points, checkpoints)
    added, scored = 0, 0
    have = store.evals()
    for run, task, mine in tqdm(work, desc="evaluate", disable=None, leave=False):
        try:
            model, task = load_run(store, run.run_id, checkpoints)
        except WeightsMissing as error:  # pruned since prepare looked
            skipped.append(str(error))
            continue
        config = json.loads(run.config_json)
        known = set(have[have.run_id == run.run_id].point)
        new = [p for p in mine if point_name(p) not in known]
        sweeps = {"joint": [p for p in new if len(p) > 1]}
        for p in (p for p in new if len(p) == 1):
            ((axis, value),) = p.items()
            sweeps.setdefault(axis, []).append(value)
        rows = generalization(
            model, run.task, config["task_params"], task, sweeps, config["train"]["eval_size"]
        )
        store.write_evals(run.run_id, rows)
        added, scored = added + len(rows), scored + 1
    return Outcome(added, scored, skipped)


def trace_pictures(store: Store, runs, at: dict, out_dir: Path, checkpoints=None) -> list[Path]:
    """The memory picture of each run at the sizes `at`, under out_dir/<run_id>/ (not stored).
    A picture is asked of every chosen run: one without kept weights or without the axes of `at`
    is an EvaluateError (choose the runs with --run-id or --tasks), raised before any is drawn."""
    import numpy as np
    import pandas as pd

    from ntm_bench.reports.memory_pictures import memory_picture

    work, skipped = prepare(store, runs, [at], checkpoints, flag="--trace-at")
    if skipped:
        raise EvaluateError(f"--trace-at {point_name(at)}: {first_of(skipped)}")
    check_folder(out_dir)
    paths = []
    for run, _, _ in work:
        model, task = load_run(store, run.run_id, checkpoints)
        arrays = trace(model, run.task, json.loads(run.config_json)["task_params"], task, at)
        row = pd.Series(
            {
                "task": f"{run.task}@{point_name(at)}",
                "model": run.model,
                "seed": run.seed,
                **{k: None if v is None else np.asarray(v) for k, v in arrays.items()},
            }
        )
        saved = memory_picture(row, Path(out_dir) / run.run_id)
        paths.append(Path(out_dir) / run.run_id / saved.png)
    return paths
