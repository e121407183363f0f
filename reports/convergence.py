"""The report's convergence results, from the survival statistics of reports/survival.py: the
Kaplan-Meier table per (task, model), the pairwise log-rank table per task (raw numbers and
display text), and the Kaplan-Meier figure of each task.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ntm_bench.reports.style import (
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
from ntm_bench.reports.survival import (
    KM,
    band,
    budget,
    converged_by,
    count,
    fit,
    median_text,
    observations,
    sooner,
)


class KMRow(NamedTuple):
    """One (task, model) of km_table."""

    task: str
    model: str
    n: int  # finished runs
    events: int  # of them converged
    budget: float  # sequences the runs had
    converged_by_budget: float  # KM P(converged by the budget)
    median_sequences: float  # KM median sequences to converge (inf: not reached)
    ci_low: float
    ci_high: float
    median_text: str


class LogrankRow(NamedTuple):
    """One pair of models of logrank_table."""

    task: str
    model_a: str
    model_b: str
    n_a: int
    n_b: int
    events_a: int
    events_b: int
    statistic: float  # log-rank Z, positive when A converges sooner
    p_value: float  # two-sided
    note: str


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
                KMRow(
                    task=task,
                    model=model,
                    n=km.n,
                    events=km.events,
                    budget=seqs,
                    converged_by_budget=converged_by(km, seqs).estimate,
                    median_sequences=km.median,
                    ci_low=km.ci_low,
                    ci_high=km.ci_high,
                    median_text=median_text(km, seqs),
                )
            )
    return pd.DataFrame(rows, columns=KMRow._fields)


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
                LogrankRow(
                    task=task,
                    model_a=model_a,
                    model_b=model_b,
                    n_a=len(a),
                    n_b=len(b),
                    events_a=int(a.converged.sum()),
                    events_b=int(b.converged.sum()),
                    statistic=rank.statistic,
                    p_value=rank.p_value,
                    note=rank.note,
                )
            )
    return pd.DataFrame(rows, columns=LogrankRow._fields)


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


def draw_models(ax, obs: pd.DataFrame, seqs: float, right: float, colors: dict) -> list:
    """Each model's step line of P(converged by n) on `ax`, from the task's observations `obs`
    (budget `seqs`, x up to `right`); returns one legend handle per model."""
    handles = []
    for model in order(obs.model.unique()):
        mine, km = obs[obs.model == model], fit(obs[obs.model == model])
        draw_model(ax, km, mine, right, colors[model])
        label = (
            f"{model_label(model)}: {km.events}/{km.n} converged, median {median_text(km, seqs)}"
        )
        handles.append(Line2D([], [], color=colors[model], linewidth=2, label=label))
    return handles


def km_caption(task: str, obs: pd.DataFrame) -> str:
    """The Kaplan-Meier figure's caption, with the finished runs per model of `obs`."""
    counts = [f"{model_label(m)} {len(obs[obs.model == m])}" for m in order(obs.model.unique())]
    return (
        f"{task_label(task)}: Kaplan-Meier estimate of the probability that a run has "
        "converged (< 0.1 bit errors per sequence on the validation set) by n training "
        "sequences, with its pointwise 95% band (log-log). Runs that never converged are "
        "censored where they stopped (ticks) and stay in the denominator until then; dotted: "
        f"1/2, where the median is read. Finished runs: {', '.join(counts)}."
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
        handles = draw_models(ax, obs, seqs, right, colors)
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
        caption = km_caption(task, obs)
        return save(fig, out_dir, f"{task}_km", f"{task_label(task)}: time to converge", caption)
