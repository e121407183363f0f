"""What a claim measures on one (task, model)'s runs, and the text that shows it:
    converged_fraction     Kaplan-Meier P(converged by `within` sequences), default the budget
    sequences_to_converge  Kaplan-Meier median sequences (optionally / the budget); "not reached"
                           means only "> the longest run" is known (reports/survival.py)
    final_cost, eval       one value per finished seed: runs.final_cost_bits (minus
                           reference_cost_bits), or evals at `point` (field, or a channel of
                           channels_json); a diverged seed has no value and counts as +inf,
                           the worst
A model's seeds are ready to decide a claim when none is pending or running and at least
min_seeds are finished (done or diverged). A model has learned a task when its median final cost
beats the task's best trivial cost by the file's margin (`learned`; the rule: claims.yaml).
Beside the rule, and not part of it, `learned` states each model's slope at the end of its runs
(`end_slope`), which tells a model still learning when its budget ran out from one that is flat.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ntm_bench.reports import survival


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


class Learned(NamedTuple):
    """Whether a (model, task)'s finished seeds learned the task (None: cannot tell), and why;
    with the slope at the end of its runs (end_slope, None where no run has enough points)."""

    state: bool | None
    text: str
    slope: Slope | None = None


END = 0.25  # the end of a run: the validation points in the last quarter of its sequences
PER = 10_000  # slopes in bits per this many sequences


class Slope(NamedTuple):
    """The validation cost's slope at the end of a model's done runs: the median over runs of
    each run's Theil-Sen slope (bits per PER sequences), and how many runs' 95% confidence
    interval of it lies below zero (still falling) or above it (rising) out of `runs`."""

    bits: float
    falling: int
    rising: int
    runs: int

    def text(self) -> str:
        flat = self.runs - self.falling - self.rising
        parts = [f"{n} {word}" for n, word in ((self.falling, "still falling"), (flat, "flat"),
                                              (self.rising, "rising")) if n]  # fmt: skip
        return (
            f"slope over the last {END:.0%} of its sequences {self.bits:+.2g} bits per "
            f"{PER:,} sequences (median of {self.runs}; {', '.join(parts)} at 95%)"
        )


def end_slope(group: pd.DataFrame, curves: pd.DataFrame) -> Slope | None:
    """Slope of each done run of `group` over its validation points (curves, split val) whose
    sequences lie in the last END of its last point's: the Theil-Sen estimator (robust to the
    odd spike of a validation curve) with its 95% interval, from at least 3 points; None when no
    run has them. Diverged runs are left out (their curves stop where they blew up)."""
    if curves.empty:
        return None
    done = set(group.run_id[group.status == "done"])
    validation = curves[(curves.split == "val") & curves.run_id.isin(done)]
    fits = []
    for _, points in validation.groupby("run_id"):
        x, y = points.sequences.to_numpy(float), points.cost_bits.to_numpy(float)
        end = (x >= (1 - END) * x.max()) & np.isfinite(y)
        if end.sum() >= 3 and np.ptp(x[end]) > 0:
            fits.append(stats.theilslopes(y[end], x[end] / PER, alpha=0.95))
    if not fits:
        return None
    return Slope(
        bits=float(np.median([f.slope for f in fits])),
        falling=sum(f.high_slope < 0 for f in fits),
        rising=sum(f.low_slope > 0 for f in fits),
        runs=len(fits),
    )


def learned(group: pd.DataFrame, curves: pd.DataFrame, model: str, fraction: float) -> Learned:
    """claims.yaml's rule 1 on one model's runs of one task: the median final validation cost
    (diverged: inf) below `fraction` of the best trivial cost (runs.trivial_json), or on a task
    with an optimum (reference_cost_bits) its median excess below `fraction` of the trivial
    cost's excess."""
    finished = group[group.status.isin(survival.FINISHED)]
    trivial = [json.loads(t) for t in finished.get("trivial_json", []) if isinstance(t, str)]
    if finished.empty:
        return Learned(None, f"{model}: no finished runs")
    if not trivial:
        return Learned(None, f"{model}: trivial costs not recorded (a run from before them)")
    name, best = min(trivial[0].items(), key=lambda item: item[1])
    costs = np.where(
        finished.status == "diverged", math.inf, finished.final_cost_bits.astype(float)
    )
    optimum = finished.reference_cost_bits.astype(float).dropna()
    floor = float(optimum.median()) if len(optimum) else 0.0
    threshold = floor + fraction * (best - floor)
    median = float(np.median(costs))
    budget = survival.count(survival.budget(group, curves))
    over = f"{'optimum ' + number(floor) + ' + ' if floor else ''}{fraction:g} x "
    rule = f"{over}({'' if not floor else 'excess of '}{name} {number(best)})"
    slope = end_slope(group, curves)
    tail = f"; {slope.text()}" if slope else ""
    if median < threshold:
        text = f"{model} learned: median final cost {number(median)} < {rule}"
        return Learned(True, text + tail, slope)
    return Learned(
        False,
        f"{model} not learned within {budget} sequences: median final cost {number(median)} "
        f"≥ {number(threshold)} = {rule}{tail}",
        slope,
    )


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


def diverged_names(group: pd.DataFrame) -> str:
    """ " (diverged: seeds 1, 3)" for a model's diverged runs ("" when none): named, not only
    counted."""
    seeds = sorted(int(s) for s in group[group.status == "diverged"].seed)
    if not seeds:
        return ""
    return f" (diverged: seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"


def survival_summary(
    group: pd.DataFrame, curves: pd.DataFrame, measure: dict
) -> tuple[Summary, list[str]]:
    """The KM value a converged_fraction or sequences_to_converge test reads, and its problems."""
    obs = survival.observations(group, curves)
    km = survival.fit(obs)
    budget, diverged = survival.budget(group, curves), int((group.status == "diverged").sum())
    if km.n == 0:
        return Summary(math.nan, math.nan, "no finished runs"), []
    crossed = obs.first_crossing.dropna()
    fell_back = obs.first_crossing.notna() & (
        ~obs.converged | (obs.first_crossing != obs.sequences)
    )
    counts = (
        f"n={km.n} ({km.events} converged"
        + (f", {diverged} diverged: not converged)" if diverged else ")")
        + diverged_names(group)
    )
    if fell_back.any():
        # where runs fell back after crossing, the first crossings differ from where they settled
        counts += (
            f"; first crossing in {len(crossed)} runs, median {survival.count(crossed.median())}"
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
