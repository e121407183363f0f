"""The paper's training protocol against the replicate profile's (issue 21, item 7), from the
published runs of both: the `protocol` profile's (Graves RMSProp, batch 1, the paper's rates) and
the `replicate` profile's (Adam, batch 16), the same (model, task, seed), read at equal sequences.

    python -m benchmarks.protocols

One row per (model, task, protocol) of the protocol profile's runs: the seeds; how many
converged within the common budget (the smaller of the two protocols' budgets), converged
meaning under 0.1 bit errors per sequence from some validation point to the last one at or
below that budget (reports.survival.settled); each seed's sequences to converge (- where it did
not); each seed's validation cost at the common budget; and the machine seconds one run took
per 1,000 training sequences (the wall time of a seed group, trained as one model, shared by
its seeds). From these: sequences and machine time to converge under each protocol.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.cli import Parser, bad_input
from benchmarks.published import rebuild
from benchmarks.run_document import PublishedError
from reports.survival import settled
from results.store import Store

PROG = "python -m benchmarks.protocols"
PROFILES = ("protocol", "replicate")  # the paper's protocol, then ours


def comparison(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The table of the module docstring from the finished runs of both PROFILES (runs with a
    `profile` column, their curves)."""
    runs = runs[runs.status.isin(("done", "diverged"))].copy()
    validation = curves[curves.split == "val"]
    # a seed group's runs (trained as one model) start within the same second and share its
    # wall time: its seeds split it
    runs["start"] = runs.started_at.round(0)
    runs["group"] = runs.groupby(["profile", "model", "task", "start"]).run_id.transform("size")
    ours = runs[runs.profile == PROFILES[0]]
    rows = []
    for (model, task), pair in ours.groupby(["model", "task"], sort=False):
        seeds = sorted(pair.seed)
        both = runs[(runs.model == model) & (runs.task == task) & runs.seed.isin(seeds)]
        ends = validation[validation.run_id.isin(both.run_id)].groupby("run_id").sequences.max()
        common = min(ends[both[both.profile == p].run_id].min() for p in PROFILES)
        for profile in PROFILES:
            side = both[both.profile == profile].sort_values("seed")
            converged, costs, seconds = [], [], []
            for run in side.itertuples():
                points = validation[
                    (validation.run_id == run.run_id) & (validation.sequences <= common)
                ]
                converged.append(settled(points))
                costs.append(float(points.sort_values("step").cost_bits.iloc[-1]))
                per_run = run.wall_s / run.group
                seconds.append(per_run / ends[run.run_id] * 1000)
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "protocol": profile,
                    "seeds": list(side.seed),
                    "common budget": int(common),
                    "converged": sum(not math.isnan(c) for c in converged),
                    "sequences to converge": [None if math.isnan(c) else int(c) for c in converged],
                    "cost at budget": [round(c, 2) for c in costs],
                    "s per 1k sequences": round(sum(seconds) / len(seconds), 2),
                }
            )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    frames = []
    with tempfile.TemporaryDirectory() as folder:
        for profile in PROFILES:
            try:
                path = rebuild(profile, Path(folder) / f"{profile}.sqlite")
            except (FileNotFoundError, PublishedError) as error:
                return bad_input(PROG, error)
            store = Store(path)
            frames.append((store.runs(), store.curves()))
            store.close()
    table = comparison(
        pd.concat([r for r, _ in frames], ignore_index=True),
        pd.concat([c for _, c in frames], ignore_index=True),
    )
    if table.empty:
        return bad_input(PROG, "no finished runs of the protocol profile are published")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
