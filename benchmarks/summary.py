"""The short table `run_suite.py` prints after a suite: one line per (task, model)."""

from __future__ import annotations

import pandas as pd


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model): seeds, status counts, median final validation cost and bit errors,
    converged seeds, median sequences to converge, median wall time."""
    rows = []
    for (task, model), group in runs.groupby(["task", "model"], sort=True):
        done = group[group.status == "done"]
        converged = done.converged_step.notna()
        rows.append({
            "task": task, "model": model, "seeds": len(group),
            "done": len(done), "diverged": int((group.status == "diverged").sum()),
            "failed": int((group.status == "failed").sum()),
            "cost_bits": done.final_cost_bits.median(), "bit_errors": done.final_bit_errors.median(),
            "converged": f"{int(converged.sum())}/{len(done)}",
            "seqs_to_converge": done.converged_sequences.median(),
            "wall_s": done.wall_s.median(),
        })
    return pd.DataFrame(rows)


def print_summary(runs: pd.DataFrame) -> None:
    """Print `summarize(runs)`; costs are the final validation point, in bits per sequence."""
    if runs.empty:
        print("no runs")
        return
    table = summarize(runs)
    print("\nfinal validation cost (bits/seq, median over seeds) and convergence (< 0.1 bit errors/seq):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))
