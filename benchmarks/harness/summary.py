"""The short table `run_suite.py` prints after a suite: one line per (task, model)."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from ntm_bench.reports import claims_file
from ntm_bench.reports.claim_measures import learned
from ntm_bench.results.store import status_counts


NO_CURVES = pd.DataFrame(columns=["run_id", "sequences"])  # budgets come from the run configs


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model): seeds, status counts, median final validation cost and bit errors, the
    best trivial cost on the same validation set and whether the model beat it by the claims'
    margin (learned: reports/claims.yaml, rule 1), converged seeds, median sequences to
    converge, median wall time."""
    rows = []
    fraction = claims_file.learned_fraction(yaml.safe_load(claims_file.CLAIMS_PATH.read_text()))
    for (task, model), group in runs.groupby(["task", "model"], sort=True):
        done = group[group.status == "done"]
        converged = done.converged_step.notna()
        trivial = [json.loads(t) for t in group.trivial_json.dropna()]
        state = learned(group, NO_CURVES, model, fraction).state
        rows.append(
            {
                "task": task,
                "model": model,
                **status_counts(group),
                "cost_bits": done.final_cost_bits.median(),
                "trivial": min(trivial[0].values()) if trivial else None,
                "learned": {True: "yes", False: "no", None: "-"}[state],
                "bit_errors": done.final_bit_errors.median(),
                "converged": f"{int(converged.sum())}/{len(done)}",
                "seqs_to_converge": done.converged_sequences.median(),
                "wall_s": done.wall_s.median(),
            }
        )
    return pd.DataFrame(rows)


def print_summary(runs: pd.DataFrame) -> None:
    """Print `summarize(runs)`; costs are the final validation point, in bits per sequence."""
    if runs.empty:
        print("no runs")
        return
    table = summarize(runs)
    print(
        "\nfinal validation cost (bits/seq, median over seeds), the best trivial cost on the same "
        "sequences (chance, or a memoryless or one-item predictor), whether the model learned "
        "(cost below half the trivial one; n-grams: half its excess over the optimum), and "
        "convergence (< 0.1 bit errors/seq):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))


def parameter_table(specs) -> pd.DataFrame:
    """Our parameter count per (task, model) of the planned runs, beside the paper's Tables 1-3
    (from reports/paper_reference.yaml) where it has one: nothing is trained."""
    from pathlib import Path

    import yaml

    from ntm_bench.benchmarks.harness.seeding import build_seeded

    reference = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "reports" / "paper_reference.yaml").read_text()
    )
    rows, seen = [], set()
    for spec in specs:
        if (spec.task, spec.model) in seen:
            continue
        seen.add((spec.task, spec.model))
        ours = build_seeded(spec)[1].n_params()
        paper = ((reference["tasks"].get(spec.task) or {}).get("params") or {}).get(spec.model)
        rows.append(
            {
                "task": spec.task,
                "model": spec.model,
                "ours": ours,
                "paper": paper,
                "ours / paper": None if not paper else ours / paper,
            }
        )
    table = pd.DataFrame(rows)
    table["paper"] = table["paper"].astype("Int64")  # integers with gaps, not floats
    return table
