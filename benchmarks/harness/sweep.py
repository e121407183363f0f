"""Declared learning-rate selection: the same small sweep for every (model, task) of a profile,
fixed before its seeds are trained.

A profile's `sweep` section says how:

    sweep:
      rates: [1.0e-4, 3.0e-4, 1.0e-3]   # at least three rates, the largest >= 10x the smallest
      seeds: [1, 2]                     # at least two
      fraction: 0.25                    # of each run's budget (train.steps)

Each (model, task, rate, seed) is the profile's run with `train.lr` set to the rate, a
`fraction` of its steps and no generalization points (the sweep reads the validation curve only),
stored under the profile name `<profile>_sweep`. The rule, declared here before any result: a
(model, task)'s rate is the one with the lowest mean final validation cost (bits per sequence,
the curve's last point) over the sweep's seeds; a diverged run counts as an infinite cost, so a
rate with a diverged seed is chosen only when every rate diverged on some seed (then none is).
The profile then states the chosen rate of each pair (models.<m>.train / per_task), and
`run_suite.py sweep --published --check` fails where it states another.
"""

from __future__ import annotations

import dataclasses
import math
import pandas as pd

from ntm_bench.benchmarks.harness.config import ConfigError, Profile
from ntm_bench.benchmarks.harness.plan import RunSpec, plan_runs, resolve

SUFFIX = "_sweep"  # the sweep's runs are stored and published as profile <name>_sweep
CSV = "sweep.csv"  # the published table, beside the sweep's run files


def sweep_specs(profile: Profile, models: list[str], tasks: list[str]) -> list[RunSpec]:
    """The sweep's runs, ordered by task, model, rate and seed."""
    sweep = profile.sweep
    if sweep is None:
        raise ConfigError(f"{profile.path}: the profile has no sweep section")
    specs = []
    for base in plan_runs(profile, models, tasks, [sweep.seeds[0]]):
        steps = max(1, round(base.train.steps * sweep.fraction))
        for rate in sweep.rates:
            for seed in sweep.seeds:
                train = dataclasses.replace(base.train, lr=rate, steps=steps)
                specs.append(
                    dataclasses.replace(
                        base, train=train, eval={}, seed=seed, profile=profile.name + SUFFIX
                    )
                )
    return specs


def sweep_table(profile: Profile, specs: list[RunSpec], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model, rate): the seeds' final validation costs, their mean (inf with
    a diverged seed), how many seeds are still to train, whether the rule chooses this rate (only
    once every seed of every rate of the pair is finished) and the rate the profile states."""
    status = dict(zip(runs.run_id, runs.status))
    final = dict(zip(runs.run_id, runs.final_cost_bits))
    rows = []
    for spec in specs:
        done = status.get(spec.run_id) in ("done", "diverged")
        cost = (
            (math.inf if status[spec.run_id] == "diverged" else final[spec.run_id])
            if done
            else math.nan
        )
        rows.append((spec.task, spec.model, spec.train.lr, spec.seed, cost))
    frame = pd.DataFrame(rows, columns=["task", "model", "lr", "seed", "cost"])
    table = (
        frame.groupby(["task", "model", "lr"], sort=False)
        .agg(
            costs=("cost", lambda c: [None if pd.isna(v) else float(v) for v in c]),
            pending=("cost", lambda c: int(c.isna().sum())),
            mean=("cost", lambda c: float(c.mean()) if c.notna().all() else math.nan),
        )
        .reset_index()
    )
    pair = table.groupby(["task", "model"], sort=False)
    best = pair["mean"].transform("min")  # NaN while a seed is pending, inf if all diverged
    complete = pair["pending"].transform("sum").eq(0) & best.map(math.isfinite)
    table["chosen"] = complete & table["mean"].eq(best)
    table["profile_lr"] = [
        resolve(profile, model, task, profile.seeds[0]).train.lr
        for task, model in zip(table.task, table.model)
    ]
    return table


def disagreements(table: pd.DataFrame) -> list[str]:
    """The (model, task) pairs whose profile states another rate than the sweep chose."""
    return [
        f"{row.model} on {row.task}: the sweep chose lr {row.lr:g}, the profile states "
        f"{row.profile_lr:g}"
        for row in table[table.chosen].itertuples()
        if not math.isclose(row.lr, row.profile_lr, rel_tol=1e-9)
    ]


def format_table(table: pd.DataFrame) -> str:
    """The sweep as text: one line per (task, model, rate), the chosen rate marked."""
    lines = [f"{'task':<20}{'model':<14}{'lr':>8}  {'final cost per seed':<24}{'mean':>9}  chosen"]
    for row in table.itertuples():
        costs = ", ".join("..." if c is None else f"{c:.2f}" for c in row.costs)
        mean = "" if math.isnan(row.mean) else f"{row.mean:.2f}"
        mark = "*" if row.chosen else ("pending" if row.pending else "")
        lines.append(f"{row.task:<20}{row.model:<14}{row.lr:>8g}  {costs:<24}{mean:>9}  {mark}")
    return "\n".join(lines)
