"""Convergence as time-to-event data: Kaplan-Meier estimates and log-rank tests, all from scipy.

Every finished run of a (task, model) is one observation of "training sequences until the run
converged" (< 0.1 bit errors per sequence on the validation set, and staying there):
    event      the run converged and stayed converged: time = the sequences at the first
               validation point from which every later one is below the threshold (a run that
               crosses it and falls back does not count at its first crossing, and counts not at
               all unless it settles below it by its last point); the first crossing
               (runs.converged_sequences) is kept beside it, as `first_crossing`;
    censored   a done run that never settled: time = the sequences it trained (its last curve
               point, i.e. its budget train.steps x batch_size); a diverged run, which can never
               converge: its budget.
Pending, running and failed runs are not data. Censored runs stay in the risk set until their
time, so a run that never converged lowers P(converged) instead of vanishing from it.

    scipy.stats.ecdf(CensoredData(uncensored=event times, right=censoring times)) -> .cdf, .sf
    P(converged by n sequences) = cdf(n) = 1 - S(n), 95% interval:
                                  confidence_interval(method="log-log")
    KM median  = the first time t with S(t) <= 1/2 ("not reached" when S never falls that low;
                 then the median is only known to exceed the longest run);
    its 95% CI = the times where the pointwise band of S contains 1/2 (Brookmeyer-Crowley read off
                 the band): from the first t with the band's lower edge <= 1/2 to the first t with
                 its upper edge <= 1/2. Where scipy's interval is undefined (S = 0 or 1) the
                 estimate stands for both edges.
    scipy.stats.logrank(x, y).statistic: positive where the first group's event rate is the
                 greater one, i.e. x converges sooner than y (checked in tests/test_claims.py);
                 its p is exact, from scipy.stats.permutation_test over every split of the
                 pooled runs (`sooner`).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from ntm_bench.results.schema import CONVERGED_BIT_ERRORS

FINISHED = ("done", "diverged")
CI_METHOD = "log-log"  # stays inside [0, 1], unlike the linear (Greenwood) interval


class KM(NamedTuple):
    """One Kaplan-Meier fit: n runs, how many converged, scipy's result (None for n = 0), the
    median and its CI in sequences (inf: not reached) and the longest observation."""

    n: int
    events: int
    result: object
    median: float
    ci_low: float
    ci_high: float
    longest: float
    last_censored: bool  # the longest observation is censored: nothing is known beyond it


class Fraction(NamedTuple):
    """P(converged by `at` sequences) with its 95% interval (NaN where undefined)."""

    at: float
    estimate: float
    low: float
    high: float


class Rank(NamedTuple):
    """A log-rank test: statistic and p (NaN with a note when undefined)."""

    statistic: float
    p_value: float
    note: str


def run_budget(config_json: str) -> float:
    """train.steps x batch_size from a run's config; NaN when not recorded."""
    train = json.loads(config_json).get("train") or {}
    steps, batch = train.get("steps"), train.get("batch_size")
    return float(steps * batch) if steps and batch else math.nan


def settled(points: pd.DataFrame) -> float:
    """The sequences of the first of a run's validation `points` (split val) from which every
    later point is converged; NaN when the last point is not."""
    points = points.sort_values("step")
    above = np.flatnonzero(~(points.bit_errors.to_numpy(float) < CONVERGED_BIT_ERRORS))
    if len(points) == 0 or (len(above) and above[-1] == len(points) - 1):
        return math.nan
    return float(points.sequences.iloc[above[-1] + 1 if len(above) else 0])


def observations(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: run_id, task, model, sequences (time), converged (event: it
    settled below the threshold), first_crossing (sequences, NaN if it never crossed)."""
    finished = runs[runs.status.isin(FINISHED)]
    last = curves.groupby("run_id").sequences.max() if not curves.empty else pd.Series(dtype=float)
    validation = curves[curves.split == "val"] if not curves.empty else curves
    by_run = dict(tuple(validation.groupby("run_id"))) if not validation.empty else {}
    rows = []
    for run in finished.itertuples(index=False):
        first = run.converged_sequences
        first = float(first) if first is not None and pd.notna(first) else math.nan
        # a store without validation points (none logged) has only the first crossing
        settle = settled(by_run[run.run_id]) if run.run_id in by_run else first
        converged = run.status == "done" and not math.isnan(settle)
        if converged:
            time = settle
        elif run.status == "diverged":
            # A diverged run is known never to converge (its parameters are gone), not merely
            # unobserved after it stopped: it counts as not converged within its whole budget.
            time = run_budget(run.config_json)
            time = float(last.get(run.run_id, math.nan)) if math.isnan(time) else time
        else:  # censored where the run stopped training; a done run without curves: its budget
            time = float(last.get(run.run_id, math.nan))
            if math.isnan(time):
                time = run_budget(run.config_json)
        rows.append(
            {
                "run_id": run.run_id,
                "task": run.task,
                "model": run.model,
                "sequences": 0.0 if math.isnan(time) else time,
                "converged": converged,
                "first_crossing": first,
            }
        )
    columns = ["run_id", "task", "model", "sequences", "converged", "first_crossing"]
    return pd.DataFrame(rows, columns=columns)


def budget(runs: pd.DataFrame, curves: pd.DataFrame) -> float:
    """The largest training budget among `runs` (train.steps x batch_size), else the furthest any
    of them got (last curve point or convergence)."""
    budgets = [b for b in map(run_budget, runs.config_json) if not math.isnan(b)]
    if budgets:
        return max(budgets)
    reached = [
        *curves[curves.run_id.isin(set(runs.run_id))].sequences,
        *runs.converged_sequences.dropna(),
    ]
    return float(max(reached)) if reached else math.nan


def censored_data(obs: pd.DataFrame) -> stats.CensoredData:
    return stats.CensoredData(
        uncensored=obs.sequences[obs.converged].to_numpy(float),
        right=obs.sequences[~obs.converged].to_numpy(float),
    )


def band(edf) -> tuple[np.ndarray, np.ndarray]:
    """scipy's pointwise 95% band of an EmpiricalDistributionFunction, undefined points filled by
    the estimate."""
    with warnings.catch_warnings():  # "undefined at some observations": handled just below
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = edf.confidence_interval(0.95, method=CI_METHOD)
    low, high = ci.low.probabilities, ci.high.probabilities
    return np.where(np.isnan(low), edf.probabilities, low), np.where(
        np.isnan(high), edf.probabilities, high
    )


def first_at_most(times: np.ndarray, values: np.ndarray, level: float) -> float:
    hits = np.flatnonzero(values <= level)
    return float(times[hits[0]]) if len(hits) else math.inf


def fit(obs: pd.DataFrame) -> KM:
    """The Kaplan-Meier fit of one group's observations (see the module docstring)."""
    if obs.empty:
        return KM(0, 0, None, math.inf, math.inf, math.inf, math.nan, False)
    result = stats.ecdf(censored_data(obs))
    times, survival = result.sf.quantiles, result.sf.probabilities
    low, high = band(result.sf)
    longest = float(obs.sequences.max())
    last_censored = not obs[obs.sequences == longest].converged.all()
    return KM(
        len(obs),
        int(obs.converged.sum()),
        result,
        first_at_most(times, survival, 0.5),
        first_at_most(times, low, 0.5),
        first_at_most(times, high, 0.5),
        longest,
        last_censored,
    )


def converged_by(km: KM, at: float) -> Fraction:
    """P(converged by `at` sequences) from the fit's cdf, with its band there."""
    if km.result is None:
        return Fraction(at, math.nan, math.nan, math.nan)
    cdf = km.result.cdf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = cdf.confidence_interval(0.95, method=CI_METHOD)
    return Fraction(
        at, float(cdf.evaluate(at)), float(ci.low.evaluate(at)), float(ci.high.evaluate(at))
    )


def logrank_statistic(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """scipy's log-rank z statistic of a against b: positive where a's convergence rate is the
    greater (a converges sooner); NaN without variance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.logrank(censored_data(a), censored_data(b)).statistic)


def sooner(a: pd.DataFrame, b: pd.DataFrame, alternative: str = "greater") -> Rank:
    """Exact permutation log-rank test of two groups' observations; "greater": a converges sooner
    than b, "less": later. The null distribution is the log-rank statistic of every split of the
    pooled runs into groups of len(a) and len(b) (252 for 5 and 5), so p is exact at any sample
    size (the asymptotic normal p can fall below the smallest attainable one, 1/252 there)."""
    if len(a) < 2 or len(b) < 2:
        return Rank(math.nan, math.nan, "n/a: fewer than 2 finished runs")
    if not (a.converged.any() or b.converged.any()):
        return Rank(math.nan, math.nan, "n/a: no run converged")
    pooled = pd.concat([a, b], ignore_index=True)
    observed = logrank_statistic(a, b)
    if not np.isfinite(observed):
        return Rank(math.nan, math.nan, "n/a: no variance (every run at one time)")

    def statistic(first, second):
        value = logrank_statistic(pooled.iloc[first], pooled.iloc[second])
        return value if np.isfinite(value) else 0.0

    result = stats.permutation_test(
        (np.arange(len(a)), np.arange(len(a), len(pooled))),
        statistic,
        permutation_type="independent",
        alternative=alternative,
        n_resamples=np.inf,  # every split: exact
        vectorized=False,
    )
    return Rank(observed, float(result.pvalue), "")


def count(value: float) -> str:
    """'42,000', 'not reached' for inf, 'n/a' for NaN."""
    if math.isinf(value):
        return "not reached"
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def median_text(km: KM, budget_seqs: float) -> str:
    """'42,000 [21,000, 60,000]' or '> budget (100,000)' when the median is not reached."""
    if km.n == 0:
        return "n/a"
    if math.isinf(km.median):
        return (
            f"> budget ({count(budget_seqs)})"
            if km.longest >= budget_seqs
            else f"> {count(km.longest)}"
        )
    return f"{count(km.median)} [{count(km.ci_low)}, {count(km.ci_high)}]"
