"""The paper's training protocol against the replicate profile's (issue 21, item 7), from the
published runs of both: the `protocol` profile's (Graves RMSProp, batch 1, the paper's rates) and
the `replicate` profile's (Adam, batch 16), the same (model, task, seed), read at equal sequences.

    python -m benchmarks.harness.protocols [--update]

One row per (model, task, protocol) of the protocol profile's runs: the seeds; how many
converged within the common budget (the smaller of the two protocols' budgets), converged
meaning under 0.1 bit errors per sequence from some validation point to the last one at or
below that budget (reports.survival.settled); each seed's sequences to converge (- where it did
not); each seed's validation cost at the common budget; and the machine seconds one run took
per 1,000 training sequences (the wall time of a seed group, trained as one model, shared by
its seeds). From these: sequences and machine time to converge under each protocol.

Then the decision of issue 21 (item 7), "if the paper's protocol decides more claims per machine
hour, the grid uses it", as declared before the LSTM's recall seed 3 and repeat-copy runs had
finished (session 10). Per protocol:
- a (model, task) has learned when the median over its seeds of the validation cost at the
  common budget is below claims.yaml's `learned.fraction` of the task's best trivial cost (rule 1
  of claims.yaml, read at the common budget instead of the run's end);
- a claim of claims.yaml counts when its task and every model it names were measured here; it is
  decided when it needs no learned model (`needs_learned: false`) or every model it names has
  learned;
- machine hours: the sum over the measured (model, task) of seeds x common budget x seconds per
  sequence;
- the rate is decided claims per machine hour. The grid takes the paper's protocol when its rate
  is higher. The replicate side's seconds come from its published runs, trained before the native
  kernel (slower than today), so a win of the replicate protocol on them stands; a win of the
  paper's protocol is re-timed against the current engine before it is acted on.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ntm_bench.benchmarks.harness.cli import Parser, bad_input
from ntm_bench.benchmarks.harness.published import ROOT, rebuild
from ntm_bench.benchmarks.harness.run_document import PublishedError
from ntm_bench.reports.claims import part_models
from ntm_bench.reports.claims_file import load_claims
from ntm_bench.reports.survival import settled
from ntm_bench.results.store import Store

PROG = "python -m benchmarks.harness.protocols"
PROFILES = ("protocol", "replicate")  # the paper's protocol, then ours
TABLE = ROOT / "protocol" / "comparison.txt"  # the published table (--update writes it)


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
            trivial = json.loads(side.trivial_json.iloc[0])
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
                    "best trivial": round(min(trivial.values()), 2),
                    "median cost": round(float(np.median(costs)), 2),
                }
            )
    return pd.DataFrame(rows)


def decision(table: pd.DataFrame, claims: list[dict], fraction: float) -> pd.DataFrame:
    """The module docstring's decision from `comparison`'s table: per protocol the (model, task)
    pairs learned, the claims counted and decided, the machine hours and decided claims per
    hour."""
    table = table.assign(
        learned=table["median cost"] < fraction * table["best trivial"],
        hours=table["s per 1k sequences"] * table["common budget"] / 1000
        * table.seeds.map(len) / 3600,
    )  # fmt: skip
    rows = []
    for protocol, side in table.groupby("protocol", sort=False):
        learned = {(r.model, r.task): r.learned for r in side.itertuples()}
        counted = [
            c
            for c in claims
            if all((m, c["task"]) in learned for p in c["parts"] for m in part_models(p))
        ]
        decided = [
            c["id"]
            for c in counted
            if not c.get("needs_learned", True)
            or all(learned[m, c["task"]] for p in c["parts"] for m in part_models(p))
        ]
        hours = float(side.hours.sum())
        rows.append(
            {
                "protocol": protocol,
                "learned": sorted(f"{m}/{t}" for (m, t), ok in learned.items() if ok),
                "claims counted": len(counted),
                "decided": len(decided),
                "machine hours": round(hours, 2),
                "decided per hour": round(len(decided) / hours, 2),
                "decided claims": decided,
            }
        )
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, verdict: pd.DataFrame) -> str:
    """The command's text: the comparison, the decision's table and its one-line outcome."""
    rates = verdict.set_index("protocol")["decided per hour"]
    better = PROFILES[0] if rates[PROFILES[0]] > rates[PROFILES[1]] else PROFILES[1]
    with pd.option_context("display.width", 250, "display.max_colwidth", 90):
        return (
            f"{table.to_string(index=False)}\n\n{verdict.to_string(index=False)}\n\n"
            f"the grid uses the {better} profile's protocol ({rates.to_dict()} decided per hour)\n"
        )


def main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--update",
        action="store_true",
        help="also write the text to results/published/protocol/comparison.txt (the published "
        "table)",
    )
    args = parser.parse_args(argv)
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
    claims = load_claims()
    text = report(table, decision(table, claims, claims[0]["learned_fraction"]))
    print(text, end="")
    if args.update:
        TABLE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
