"""What a claim measures on one (task, model)'s runs, and the text that shows it:
    converged_fraction     Kaplan-Meier P(converged by `within` sequences), default the budget
    sequences_to_converge  Kaplan-Meier median sequences (optionally / the budget); "not reached"
                           means only "> the longest run" is known (reports/survival.py)
    final_cost, eval       one value per finished seed: runs.final_cost_bits (minus
                           reference_cost_bits), or evals at `point` (field, or a channel of
                           channels_json); a diverged seed has no value and counts as +inf,
                           the worst
A model's seeds are ready to decide a claim when none is pending or running and at least
min_seeds are finished (done or diverged).
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from reports import survival


class Summary(NamedTuple):
    """What a test reads: the value known to lie in [low, high] (low == high when known exactly)."""

    low: float
    high: float
    text: str


def number(value: float) -> str:
    return "inf" if value == math.inf else f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def readiness(group: pd.DataFrame, model: str, min_seeds: int) -> list[str]:
    """Why a model's seeds cannot decide a claim yet ([] when they can)."""
    if group.empty:
        return [f"no {model} runs"]
    unfinished = group[group.status.isin(["pending", "running"])]
    problems = []
    if len(unfinished):
        state = "/".join(sorted(unfinished.status.unique()))
        problems.append(f"{len(unfinished)} of {len(group)} {model} seeds {state}")
    finished = int(group.status.isin(survival.FINISHED).sum())
    if finished < min_seeds:
        problems.append(f"only {finished} finished {model} seeds (need {min_seeds})")
    return problems


def eval_values(finished: pd.DataFrame, evals: pd.DataFrame, measure: dict) -> pd.Series:
    """Per finished run (index run_id): the eval at `point` (field, or channel of channels_json)."""
    if "point" in evals.columns:
        rows = evals[evals.point == measure["point"]]
    else:  # a store from before evals had points: "axis=value"
        rows = evals[[f"{a}={v}" == measure["point"] for a, v in zip(evals.axis, evals.value)]]
    rows = rows[rows.run_id.isin(set(finished.run_id))]
    field, channel = measure["field"], measure.get("channel")
    if channel:
        texts = (
            rows.channels_json if "channels_json" in rows.columns else pd.Series([None] * len(rows))
        )
        picked = [
            json.loads(t).get(channel, {}).get(field, math.nan) if isinstance(t, str) else math.nan
            for t in texts
        ]
    else:
        picked = rows[field].tolist()
    return pd.Series(picked, index=rows.run_id, dtype=float).reindex(finished.run_id)


def values(group: pd.DataFrame, evals: pd.DataFrame, measure: dict) -> tuple[np.ndarray, list[str]]:
    """One value per finished seed (diverged: +inf) and the problems (values missing for done
    seeds)."""
    finished = group[group.status.isin(survival.FINISHED)]
    if measure["kind"] == "final_cost":
        picked = finished.set_index("run_id").final_cost_bits.astype(float)
        if measure.get("minus_reference"):
            picked = picked - finished.set_index("run_id").reference_cost_bits.astype(float)
        what = "final cost" + (" or reference cost" if measure.get("minus_reference") else "")
    else:
        picked, what = eval_values(finished, evals, measure), f"eval point {measure['point']}"
    diverged = (finished.status == "diverged").to_numpy()
    picked = np.where(diverged, math.inf, picked.to_numpy())
    missing, model = int(np.isnan(picked).sum()), measure["model"]
    problems = [f"{what} missing for {missing} of {len(finished)} {model} runs"] if missing else []
    return picked[~np.isnan(picked)], problems


def values_text(sample: np.ndarray) -> str:
    if len(sample) == 0:
        return "no values"
    with np.errstate(invalid="ignore"):  # interpolating between two diverged seeds: inf - inf
        q25, median, q75 = np.nan_to_num(np.percentile(sample, [25, 50, 75]), nan=math.inf)
    diverged = int(np.isinf(sample).sum())
    extra = f", {diverged} diverged counted as inf" if diverged else ""
    return f"median {number(median)} (IQR {number(q25)}–{number(q75)}), n={len(sample)}{extra}"


def survival_summary(
    group: pd.DataFrame, curves: pd.DataFrame, measure: dict
) -> tuple[Summary, list[str]]:
    """The KM value a converged_fraction or sequences_to_converge test reads, and its problems."""
    km = survival.fit(survival.observations(group, curves))
    budget, diverged = survival.budget(group, curves), int((group.status == "diverged").sum())
    if km.n == 0:
        return Summary(math.nan, math.nan, "no finished runs"), []
    counts = f"n={km.n} ({km.events} converged" + (
        f", {diverged} diverged: not converged)" if diverged else ")"
    )
    if measure["kind"] == "converged_fraction":
        at = float(measure.get("within") or budget)
        frac = survival.converged_by(km, at)
        ci = "CI n/a" if np.isnan(frac.low) else f"[{frac.low:.2f}, {frac.high:.2f}]"
        text = f"KM {frac.estimate:.2f} {ci} by {survival.count(at)} seq., {counts}"
        beyond = at > km.longest and km.last_censored
        problems = [
            f"{survival.count(at)} sequences is past the longest run ({survival.count(km.longest)})"
        ]
        return Summary(frac.estimate, frac.estimate, text), problems if beyond else []
    scale = budget if measure.get("relative_to_budget") else 1.0
    low, high = (
        (km.longest / scale, math.inf) if math.isinf(km.median) else (km.median / scale,) * 2
    )
    text = f"KM median {survival.median_text(km, budget)} seq."
    if measure.get("relative_to_budget") and not math.isinf(km.median):
        text += f" = {low:.2f} of the budget {survival.count(budget)}"
    return Summary(low, high, f"{text}, {counts}"), []
