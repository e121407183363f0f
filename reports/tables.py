"""The bits-per-sequence table (model x task) and the pairwise model comparison, from the runs
table.

Statistics, over the seeds of one (task, model) whose status is "done":
    median, mean and its 95% confidence interval  mean +- t_{0.975, n-1} * s / sqrt(n)
    (s the sample standard deviation; no interval for n < 2);
    converged fraction = seeds with a converged_step / all seeds of the pair, whatever their status
    (a diverged or unfinished seed has not converged); sequences to converge: median over the
    converged seeds.
The comparison reports, for each pair of models on a task, the difference of the medians of the
final validation cost, the Hodges-Lehmann shift (median of all pairwise differences) and the
two-sided Mann-Whitney U p-value.

They are written to files by reports/table_files.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ntm_bench.reports import reference as ref
from ntm_bench.reports.style import TASK_ORDER, order
from ntm_bench.results.store import status_counts

NA = "n/a"
PERMUTATIONS = 9999  # exhaustive Mann-Whitney null distributions up to this many splits


def ci95(values) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% t-interval of the mean; low/high NaN for fewer than 2 values."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def status_text(group: pd.DataFrame) -> str:
    """'3/3 done' or '2/3 done, diverged 1/3' (every status present, done first)."""
    counts = group.status.value_counts()
    n = len(group)
    parts = [f"{counts.get('done', 0)}/{n} done"]
    parts += [
        f"{s} {counts[s]}/{n}"
        for s in ("diverged", "failed", "running", "pending")
        if counts.get(s, 0)
    ]
    return ", ".join(parts)


def count_text(values) -> str:
    """'67,561', '66,111-67,561' for several, 'n/a' for none."""
    values = sorted({int(v) for v in values if v is not None and np.isfinite(v)})
    if not values:
        return NA
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}-{values[-1]:,}"


def bits_table(runs: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """One row per (task, model) in `runs`, raw numbers (see the module docstring)."""
    rows = []
    for task in order(runs.task.unique(), known=TASK_ORDER):
        for model in order(runs[runs.task == task].model.unique()):
            group = runs[(runs.task == task) & (runs.model == model)]
            done = group[group.status == "done"]
            cost, errors = done.final_cost_bits.dropna(), done.final_bit_errors.dropna()
            cost_mean, cost_low, cost_high = ci95(cost)
            err_mean, err_low, err_high = ci95(errors)
            converged = group.converged_step.notna()
            paper = ref.task_reference(reference, task).get("params", {}).get(model)
            rows.append(
                {
                    "task": task,
                    "model": model,
                    **status_counts(group),
                    "status": status_text(group),
                    "n": len(cost),
                    "cost_median": cost.median(),
                    "cost_mean": cost_mean,
                    "cost_ci_low": cost_low,
                    "cost_ci_high": cost_high,
                    "bit_errors_median": errors.median(),
                    "bit_errors_mean": err_mean,
                    "bit_errors_ci_low": err_low,
                    "bit_errors_ci_high": err_high,
                    "converged": int(converged.sum()),
                    "converged_fraction": converged.sum() / len(group),
                    "seqs_to_converge_median": group.converged_sequences.dropna().median(),
                    "n_params": count_text(group.n_params),
                    "paper_n_params": NA if paper is None else f"{paper:,}",
                }
            )
    return pd.DataFrame(rows)


def number(value, digits: int = 2) -> str:
    return NA if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def mean_ci(mean, low, high) -> str:
    """'12.30 ± 1.50' (half-width of the interval), or the mean alone when there is no interval."""
    if not np.isfinite(mean):
        return NA
    return f"{mean:,.2f}" if not np.isfinite(low) else f"{mean:,.2f} ± {(high - low) / 2:,.2f}"


def format_bits_table(table: pd.DataFrame) -> pd.DataFrame:
    """The bits table as display text."""
    return pd.DataFrame(
        {
            "task": table.task,
            "model": table.model,
            "seeds": table.status,
            "cost median": table.cost_median.map(number),
            "cost mean ± 95% CI": [
                mean_ci(*r) for r in table[["cost_mean", "cost_ci_low", "cost_ci_high"]].to_numpy()
            ],
            "bit errors median": table.bit_errors_median.map(number),
            "bit errors mean ± 95% CI": [
                mean_ci(*r)
                for r in table[
                    ["bit_errors_mean", "bit_errors_ci_low", "bit_errors_ci_high"]
                ].to_numpy()
            ],
            "converged": [f"{c}/{s}" for c, s in zip(table.converged, table.seeds)],
            "median seqs to converge": table.seqs_to_converge_median.map(lambda v: number(v, 0)),
            "params (ours)": table.n_params,
            "params (paper)": table.paper_n_params,
        }
    )


def smallest_p(n_a: int, n_b: int, two_sided: bool = True) -> float:
    """The smallest exact Mann-Whitney p-value attainable with these sample sizes: one
    arrangement of the ranks in comb(n_a + n_b, n_a), twice that two-sided."""
    return min(1.0, (2 if two_sided else 1) / math.comb(n_a + n_b, n_a))


def mann_whitney_method(a: np.ndarray, b: np.ndarray):
    """scipy's default (exact for small samples without ties), except with ties in small
    samples, where its normal approximation can undercut the smallest attainable p: there the
    exact null distribution over every split of the pooled values (exhaustive, so deterministic)."""
    pooled = np.concatenate([a, b])
    if len(np.unique(pooled)) < len(pooled) and math.comb(len(pooled), len(a)) <= PERMUTATIONS:
        return stats.PermutationMethod(n_resamples=PERMUTATIONS)
    return "auto"


def compare(a, b) -> dict:
    """Differences and Mann-Whitney U of two samples; p is NaN with a `note` when undefined."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    row = {
        "n_a": len(a),
        "n_b": len(b),
        "median_a": np.median(a) if len(a) else math.nan,
        "median_b": np.median(b) if len(b) else math.nan,
        "u": math.nan,
        "p_value": math.nan,
        "note": "",
    }
    row["median_diff"] = row["median_a"] - row["median_b"]
    row["hodges_lehmann"] = (
        float(np.median(np.subtract.outer(a, b))) if len(a) and len(b) else math.nan
    )
    if len(a) < 2 or len(b) < 2:
        row["note"] = "n/a: fewer than 2 finished seeds"
    elif np.ptp(np.concatenate([a, b])) == 0:
        row["note"] = "n/a: all values identical"
    else:
        result = stats.mannwhitneyu(a, b, alternative="two-sided", method=mann_whitney_method(a, b))
        row.update(
            u=float(result.statistic),
            p_value=float(result.pvalue),
            note=f"smallest possible p: {smallest_p(len(a), len(b)):.3g}",
        )
    return row


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, every pair of models (in the report's model order): final validation cost of
    the done seeds compared with `compare`."""
    rows = []
    for task in order(runs.task.unique(), known=TASK_ORDER):
        done = runs[(runs.task == task) & (runs.status == "done")].dropna(
            subset=["final_cost_bits"]
        )
        for model_a, model_b in itertools.combinations(
            order(runs[runs.task == task].model.unique()), 2
        ):
            rows.append(
                {
                    "task": task,
                    "model_a": model_a,
                    "model_b": model_b,
                    **compare(
                        done[done.model == model_a].final_cost_bits,
                        done[done.model == model_b].final_cost_bits,
                    ),
                }
            )
    columns = [
        "task",
        "model_a",
        "model_b",
        "n_a",
        "n_b",
        "median_a",
        "median_b",
        "median_diff",
        "hodges_lehmann",
        "u",
        "p_value",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": table.task,
            "A": table.model_a,
            "B": table.model_b,
            "seeds A / B": [f"{a} / {b}" for a, b in zip(table.n_a, table.n_b)],
            "median A": table.median_a.map(number),
            "median B": table.median_b.map(number),
            "median A − median B": table.median_diff.map(number),
            "Hodges-Lehmann shift": table.hodges_lehmann.map(number),
            "Mann-Whitney p": [NA if not np.isfinite(p) else f"{p:.3g}" for p in table.p_value],
            "note": table.note,
        }
    )
