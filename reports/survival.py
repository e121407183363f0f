"""Convergence as time-to-event data: Kaplan-Meier estimates and log-rank tests, all from scipy.

Every finished run of a (task, model) is one observation of "training sequences until the run
converged" (< 0.1 bit errors per sequence on the validation set):
    event      the run converged: time = runs.converged_sequences;
    censored   a done run that never converged: time = the sequences it trained (its last curve
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
    scipy.stats.logrank(x, y, alternative): "greater" means the first group's event rate is the
                 greater one, i.e. x converges sooner than y (checked in tests/test_claims.py).
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy import stats

from reports.style import (
    SEQUENCE_FORMATTER,
    TASK_ORDER,
    Saved,
    model_label,
    new_figure,
    order,
    save,
    styled,
    task_label,
)

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


def observations(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: run_id, task, model, sequences (time), converged (event)."""
    finished = runs[runs.status.isin(FINISHED)]
    last = curves.groupby("run_id").sequences.max() if not curves.empty else pd.Series(dtype=float)
    rows = []
    for run in finished.itertuples(index=False):
        converged = run.converged_sequences is not None and pd.notna(run.converged_sequences)
        if converged:
            time = float(run.converged_sequences)
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
            }
        )
    return pd.DataFrame(rows, columns=["run_id", "task", "model", "sequences", "converged"])


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


def sooner(a: pd.DataFrame, b: pd.DataFrame, alternative: str = "greater") -> Rank:
    """Log-rank test of two groups' observations; "greater": a converges sooner than b."""
    if len(a) < 2 or len(b) < 2:
        return Rank(math.nan, math.nan, "n/a: fewer than 2 finished runs")
    if not (a.converged.any() or b.converged.any()):
        return Rank(math.nan, math.nan, "n/a: no run converged")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.logrank(censored_data(a), censored_data(b), alternative=alternative)
    if not np.isfinite(result.pvalue):
        return Rank(math.nan, math.nan, "n/a: no variance (every run at one time)")
    return Rank(float(result.statistic), float(result.pvalue), "")


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


def km_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model) with finished runs: n, events, KM median and CI (inf: not
    reached)."""
    obs, rows = observations(runs, curves), []
    for task in order(obs.task.unique(), known=TASK_ORDER):
        for model in order(obs[obs.task == task].model.unique()):
            mine = obs[(obs.task == task) & (obs.model == model)]
            km = fit(mine)
            seqs = budget(runs[(runs.task == task) & (runs.model == model)], curves)
            rows.append(
                {
                    "task": task,
                    "model": model,
                    "n": km.n,
                    "events": km.events,
                    "budget": seqs,
                    "converged_by_budget": converged_by(km, seqs).estimate,
                    "median_sequences": km.median,
                    "ci_low": km.ci_low,
                    "ci_high": km.ci_high,
                    "median_text": median_text(km, seqs),
                }
            )
    columns = [
        "task",
        "model",
        "n",
        "events",
        "budget",
        "converged_by_budget",
        "median_sequences",
        "ci_low",
        "ci_high",
        "median_text",
    ]
    return pd.DataFrame(rows, columns=columns)


def format_km_table(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": table.task,
            "model": table.model,
            "runs": table.n,
            "converged": table.events,
            "budget (sequences)": table.budget.map(count),
            "KM P(converged by budget)": table.converged_by_budget.map(
                lambda v: "n/a" if np.isnan(v) else f"{v:.2f}"
            ),
            "KM median sequences [95% CI]": table.median_text,
        }
    )


def logrank_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per task, every pair of models: the two-sided log-rank test of their convergence times."""
    obs, rows = observations(runs, curves), []
    for task in order(obs.task.unique(), known=TASK_ORDER):
        mine = obs[obs.task == task]
        for model_a, model_b in itertools.combinations(order(mine.model.unique()), 2):
            a, b = mine[mine.model == model_a], mine[mine.model == model_b]
            rank = sooner(a, b, "two-sided")
            rows.append(
                {
                    "task": task,
                    "model_a": model_a,
                    "model_b": model_b,
                    "n_a": len(a),
                    "n_b": len(b),
                    "events_a": int(a.converged.sum()),
                    "events_b": int(b.converged.sum()),
                    "statistic": rank.statistic,
                    "p_value": rank.p_value,
                    "note": rank.note,
                }
            )
    columns = [
        "task",
        "model_a",
        "model_b",
        "n_a",
        "n_b",
        "events_a",
        "events_b",
        "statistic",
        "p_value",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)


def format_logrank_table(table: pd.DataFrame) -> pd.DataFrame:
    fmt = lambda v, spec: "n/a" if not np.isfinite(v) else format(v, spec)
    return pd.DataFrame(
        {
            "task": table.task,
            "A": table.model_a,
            "B": table.model_b,
            "runs A / B": [f"{a} / {b}" for a, b in zip(table.n_a, table.n_b)],
            "converged A / B": [f"{a} / {b}" for a, b in zip(table.events_a, table.events_b)],
            "log-rank Z (A sooner: +)": [fmt(v, ".2f") for v in table.statistic],
            "p (two-sided)": [fmt(v, ".3g") for v in table.p_value],
            "note": table.note,
        }
    )


def draw_model(ax, km: KM, obs: pd.DataFrame, right: float, color) -> None:
    """The step line of P(converged by n), its 95% band, and a tick at every censored run."""
    cdf = km.result.cdf
    low, high = band(cdf)
    x = np.concatenate([[0.0], cdf.quantiles, [max(right, km.longest)]])
    pad = lambda values: np.concatenate([[0.0], values, [values[-1]]])
    ax.fill_between(x, pad(low), pad(high), step="post", color=color, alpha=0.15, linewidth=0)
    ax.step(x, pad(cdf.probabilities), where="post", color=color, linewidth=2)
    censored = obs.sequences[~obs.converged].to_numpy(float)
    if len(censored):
        ax.plot(
            censored,
            cdf.evaluate(censored),
            linestyle="none",
            marker="|",
            markersize=12,
            markeredgewidth=2,
            color=color,
        )


def km_figure(
    task: str, runs: pd.DataFrame, curves: pd.DataFrame, colors: dict, out_dir: Path
) -> Saved | None:
    """P(converged by n training sequences) per model for one task; None without finished runs."""
    runs = runs[runs.task == task]
    obs = observations(runs, curves)
    if obs.empty:
        return None
    seqs = budget(runs, curves)
    right = seqs if np.isfinite(seqs) else float(obs.sequences.max())
    with styled():
        fig = new_figure(8, 5.2)
        ax = fig.subplots()
        handles, counts = [], []
        for model in order(obs.model.unique()):
            mine, km = obs[obs.model == model], fit(obs[obs.model == model])
            draw_model(ax, km, mine, right, colors[model])
            label = (
                f"{model_label(model)}: {km.events}/{km.n} converged, "
                f"median {median_text(km, seqs)}"
            )
            handles.append(Line2D([], [], color=colors[model], linewidth=2, label=label))
            counts.append(f"{model_label(model)} {km.n}")
        ax.axhline(0.5, color="0.4", linestyle=":", linewidth=1.2)
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                linestyle="none",
                marker="|",
                markersize=12,
                markeredgewidth=2,
                label="censored: never converged within the budget",
            )
        )
        ax.set(
            xlim=(0, right * 1.02),
            ylim=(-0.02, 1.02),
            xlabel="training sequences seen",
            ylabel="P(converged by n sequences)",
            title="Kaplan-Meier estimate",
        )
        ax.xaxis.set_major_formatter(SEQUENCE_FORMATTER)
        fig.suptitle(f"{task_label(task)}: time to converge")
        fig.legend(handles=handles, loc="outside lower center", ncols=1, fontsize="small")
        caption = (
            f"{task_label(task)}: Kaplan-Meier estimate of the probability that a run has "
            "converged (< 0.1 bit errors per sequence on the validation set) by n training "
            "sequences, with its pointwise 95% band (log-log). Runs that never converged are "
            "censored where they stopped (ticks) and stay in the denominator until then; dotted: "
            f"1/2, where the median is read. Finished runs: {', '.join(counts)}."
        )
        return save(fig, out_dir, f"{task}_km", f"{task_label(task)}: time to converge", caption)
