"""Evaluate finished runs at new generalization points without retraining: each run's kept
weights (results.trained) are loaded and scored on the same fixed evaluation sets a trained run
would get at those points; the rows are added to the store's evals table, never replacing one
that is there. Also the memory picture of any run at any size.

    python run_suite.py evaluate --profile quick --at length=200,500 [--models ntm] [--seeds 1] [--run-id ID]
    python run_suite.py evaluate --profile replicate --joint length=20,repeats=10
    python run_suite.py evaluate --profile quick --trace-at length=500 --run-id ID
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from benchmarks.evaluate import generalization, point_name, trace
from results.store import Store
from results.trained import WeightsMissing, load_run


class Outcome(NamedTuple):
    """What an evaluate call did: rows added, runs scored, runs skipped and why (one line each)."""

    added: int
    scored: int
    skipped: list


def parse_points(at: list[str], joint: list[str]) -> list[dict]:
    """`--at length=200,500` -> [{length: 200}, {length: 500}]; `--joint length=20,repeats=10`
    -> [{length: 20, repeats: 10}]. ValueError naming the flag on anything else."""
    points = []
    for text in at:
        axis, _, values = text.partition("=")
        try:
            numbers = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"--at {text!r}: expected AXIS=N[,N...] with integers, e.g. length=200,500"
            ) from None
        if not axis.strip() or not numbers or min(numbers) < 1:
            raise ValueError(
                f"--at {text!r}: expected AXIS=N[,N...] with positive integers, e.g. length=200,500"
            )
        points += [{axis.strip(): n} for n in numbers]
    for text in joint:
        try:
            point = {a.strip(): int(v) for a, v in (part.split("=") for part in text.split(","))}
        except ValueError:
            raise ValueError(
                f"--joint {text!r}: expected AXIS=N,AXIS=N, e.g. length=20,repeats=10"
            ) from None
        if len(point) < 2 or min(point.values()) < 1:
            raise ValueError(
                f"--joint {text!r}: a joint point sets two or more axes to positive integers"
            )
        points.append(point)
    return points


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


def evaluate_runs(store: Store, runs, points: list[dict], checkpoints=None) -> Outcome:
    """Score every run at every point its task has the axes for; add the rows that are new."""
    added, scored, skipped = 0, 0, []
    have = store.evals()
    for run in tqdm(list(runs.itertuples()), desc="evaluate", disable=None, leave=False):
        try:
            model, task = load_run(store, run.run_id, checkpoints)
        except WeightsMissing as error:
            skipped.append(str(error))
            continue
        config = json.loads(run.config_json)
        mine = [p for p in points if set(p) <= set(task.axes)]
        known = set(have[have.run_id == run.run_id].point)
        new = [p for p in mine if point_name(p) not in known]
        if not mine:
            skipped.append(
                f"run {run.run_id} ({run.task}) has none of the axes asked for (its axes: "
                f"{', '.join(task.axes)})"
            )
            continue
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
    """The memory picture of each run at the sizes `at`, under out_dir/figures/ (not stored)."""
    import numpy as np
    import pandas as pd

    from reports.memory import memory_picture

    paths = []
    for run in runs.itertuples():
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
