"""Learning curves per task, in the style of the paper's figures: validation (and training) cost
and validation bit errors against training sequences seen.

From the store's runs and curves: the median over the done seeds with an interquartile band per
model (reports/figures.py), the levels a cost can be read against (Bayes-optimal, the paper's
optimum and chance), the paper's values (reports/paper_marks.py) and the curriculum's rises
(reports/curriculum.py). The curves of diverged or failed runs are drawn one by one, thin,
ending in a cross, so they are visible but do not bend the median.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from matplotlib.lines import Line2D

from ntm_bench.reports import reference as ref
from ntm_bench.reports.curriculum import draw_curriculum
from ntm_bench.reports.figures import draw_median, setting_note, task_params
from ntm_bench.reports.paper_marks import (
    beyond_count,
    draw_paper_values,
    reference_note,
    sequence_axis,
)
from ntm_bench.results.schema import CONVERGED_BIT_ERRORS
from ntm_bench.reports.style import (
    Saved,
    model_label,
    new_figure,
    order,
    plural,
    save,
    set_value_scale,
    styled,
    task_label,
)

STOPPED = ("diverged", "failed")


class Drawn(NamedTuple):
    """What was drawn on the two panels: legend handles, and the values on the cost and the
    bit-error panel (for their y-scales)."""

    handles: list
    cost_values: list
    error_values: list


class Panels(NamedTuple):
    """The two panels drawn: their legend handles and the names of their y-scales."""

    handles: list
    cost_scale: str
    error_scale: str


def seed_counts(runs: pd.DataFrame) -> dict:
    """model -> number of done runs (what the medians are over)."""
    done = runs[runs.status == "done"]
    return {m: len(done[done.model == m]) for m in runs.model.unique()}


def seeds_text(runs: pd.DataFrame, model: str) -> str:
    """'3 seeds', or '2 of 3 seeds done' when some did not finish."""
    mine = runs[runs.model == model]
    done = int((mine.status == "done").sum())
    return (
        plural(done, "seed") if done == len(mine) else f"{done} of {plural(len(mine), 'seed')} done"
    )


TRIVIAL_LABELS = {
    "chance": "chance (0.5 everywhere)",
    "memoryless": "memoryless best",
    "one_item": "keeping one item",
}


def trivial_levels(runs: pd.DataFrame) -> dict:
    """The trivial costs on the runs' validation set (runs.trivial_json, the first run that has
    them: a task's runs share one set), {name: bits per sequence}; {} for an older store."""
    texts = runs.trivial_json.dropna() if "trivial_json" in runs.columns else []
    return json.loads(texts.iloc[0]) if len(texts) else {}


def draw_levels(ax, entries: dict, runs: pd.DataFrame) -> tuple[list, list]:
    """Horizontal lines: the store's Bayes-optimal cost on the validation set (n-grams), the
    trivial costs on it (chance, and the memoryless and one-item predictors where the task has
    them: a model near them has learned nothing), and the paper's optimum where the runs have the
    paper's task parameters.
    Returns (legend handles, values)."""
    handles, values = [], []
    for value in runs.reference_cost_bits.dropna().round(3).unique():
        ax.axhline(value, color="black", linewidth=1.2)
        handles.append(
            Line2D([], [], color="black", label=f"Bayes-optimal on our validation set: {value:.2f}")
        )
        values.append(value)
    trivial = trivial_levels(runs)
    for (name, value), style in zip(trivial.items(), ("-.", (0, (5, 2, 1, 2, 1, 2)), "--")):
        ax.axhline(value, color="0.55", linestyle=style, linewidth=1.2)
        label = TRIVIAL_LABELS.get(name, name)
        handles.append(Line2D([], [], color="0.55", linestyle=style, label=f"{label}: {value:.1f}"))
        values.append(value)
    params = task_params(runs)
    paper_levels = [("optimum_cost_bits", ":", "optimum (paper's setting)")]
    if not trivial:  # a store from before trivial costs: the paper's chance level, where it fits
        paper_levels.append(("chance_cost_bits", "-.", "chance, predicting 0.5"))
    for kind, style, text in paper_levels:
        entry = entries.get(kind)
        if entry and ref.setting_matches(
            entry.get("setting", entries.get("setting")) or {}, params
        ):
            ax.axhline(entry["value"], color="0.4", linestyle=style, linewidth=1.2)
            handles.append(
                Line2D([], [], color="0.4", linestyle=style, label=f"{text}: {entry['value']:g}")
            )
            values.append(entry["value"])
    return handles, values


def draw_runs(
    cost_ax,
    error_ax,
    done: pd.DataFrame,
    stopped: pd.DataFrame,
    runs: pd.DataFrame,
    models: list,
    colors: dict,
) -> Drawn:
    """Per model the medians of the done runs (validation cost and bit errors, training cost
    dashed), then each diverged or failed run's validation curve ending in a cross."""
    medians = draw_medians(cost_ax, error_ax, done, runs, models, colors)
    stops = draw_stopped(cost_ax, error_ax, stopped, colors)
    handles = medians.handles + [
        Line2D([], [], color="0.3", linewidth=2, label="validation: median over seeds, band: IQR"),
        Line2D(
            [],
            [],
            color="0.3",
            linewidth=0.9,
            linestyle="--",
            label="training (running mean): median",
        ),
    ]
    if not stopped.empty:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                linewidth=0.8,
                marker="x",
                label="diverged / failed run (one seed)",
            )
        )
    return Drawn(
        handles,
        medians.cost_values + stops.cost_values,
        medians.error_values + stops.error_values,
    )


def draw_medians(
    cost_ax, error_ax, done: pd.DataFrame, runs: pd.DataFrame, models: list, colors: dict
) -> Drawn:
    """Per model the medians of the done runs' curve points `done`: validation cost and bit
    errors, training cost dashed; one legend handle per model (its seeds counted in `runs`)."""
    handles, cost_values, error_values = [], [], []
    for model in models:
        color, mine = colors[model], done[done.model == model]
        val, train = mine[mine.split == "val"], mine[mine.split == "train"]
        cost_values += draw_median(
            cost_ax,
            train,
            "sequences",
            "cost_bits",
            color,
            linewidth=0.9,
            linestyle="--",
            alpha=0.8,
        )
        cost_values += draw_median(cost_ax, val, "sequences", "cost_bits", color, linewidth=2)
        error_values += draw_median(error_ax, val, "sequences", "bit_errors", color, linewidth=2)
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                linewidth=2,
                label=f"{model_label(model)} ({seeds_text(runs, model)})",
            )
        )
    return Drawn(handles, cost_values, error_values)


def draw_stopped(cost_ax, error_ax, stopped: pd.DataFrame, colors: dict) -> Drawn:
    """Each diverged or failed run's validation curve (points `stopped`), thin, ending in a
    cross; no legend handles."""
    cost_values, error_values = [], []
    for _, run in stopped[stopped.split == "val"].groupby("run_id"):
        for ax, column, bucket in (
            (cost_ax, "cost_bits", cost_values),
            (error_ax, "bit_errors", error_values),
        ):
            ax.plot(
                run.sequences,
                run[column],
                color=colors[run.model.iloc[0]],
                linewidth=0.8,
                alpha=0.7,
                marker="x",
                markevery=[len(run) - 1],
                markersize=8,
            )
            bucket.extend(run[column].dropna())
    return Drawn([], cost_values, error_values)


def draw_panels(
    axes, curves: pd.DataFrame, runs: pd.DataFrame, models: list, colors: dict, entries: dict, curve
) -> Panels:
    """The cost and bit-error panels `axes` of one task: its curve points `curves` (with their
    run's status), the levels of its reference `entries`, the paper's `curve` values, the
    convergence threshold, and both y-scales."""
    cost_ax, error_ax = axes
    done, stopped = curves[curves.status == "done"], curves[curves.status.isin(STOPPED)]
    xmax = float(curves.sequences.max())
    handles, cost_values, error_values = draw_runs(
        cost_ax, error_ax, done, stopped, runs, models, colors
    )
    level_handles, level_values = draw_levels(cost_ax, entries, runs)
    paper_values = [
        v
        for e in curve
        for v in ref.as_range(e["cost_bits"])
        if v > 0 and set(e["models"]) & set(models)
    ]
    cost_scale = set_value_scale(cost_ax, cost_values + level_values + paper_values)
    error_scale = set_value_scale(error_ax, error_values + [CONVERGED_BIT_ERRORS])
    handles += level_handles + draw_paper_values(cost_ax, curve, models, colors, xmax, cost_scale)
    error_ax.axhline(CONVERGED_BIT_ERRORS, color="0.4", linestyle=":", linewidth=1.2)
    handles.append(
        Line2D(
            [],
            [],
            color="0.4",
            linestyle=":",
            label=f"converged: < {CONVERGED_BIT_ERRORS:g} bit errors / seq.",
        )
    )
    return Panels(handles, cost_scale, error_scale)


def learning_curves(
    task: str,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    reference: dict,
    colors: dict,
    out_dir: Path,
) -> Saved | None:
    """Validation (and training) cost and validation bit errors, in bits per sequence, against
    training sequences seen, for one task; None when the task has no curve points."""
    runs, curves = runs[runs.task == task], curves[curves.task == task]
    if curves.empty:
        return None
    status = runs.set_index("run_id").status
    curves = curves.assign(status=curves.run_id.map(status))
    xmax = float(curves.sequences.max())
    models = order(curves.model.unique())
    entries = ref.task_reference(reference, task)
    curve, difference = ref.comparable_entries(entries, "curve", task_params(runs))
    with styled():
        fig = new_figure(11, 5.6)
        cost_ax, error_ax = fig.subplots(1, 2, sharex=True)
        drawn = draw_panels((cost_ax, error_ax), curves, runs, models, colors, entries, curve)
        cost_ax.set(title="cost (validation; dashed: training)", ylabel="cost (bits / sequence)")
        error_ax.set(title="bit errors (validation)", ylabel="bit errors (bits / sequence)")
        sequence_axis((cost_ax, error_ax), xmax, beyond_count(curve, models, xmax))
        rise_handles, rise_caption = draw_curriculum((cost_ax, error_ax), runs, colors, xmax)
        handles = drawn.handles + rise_handles
        fig.suptitle(f"{task_label(task)}: learning curves")
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=2 if len(handles) > 6 else 3,
            fontsize="small",
        )
        caption = (
            learning_caption(task, runs, reference, drawn) + setting_note(difference) + rise_caption
        )
        return save(
            fig, out_dir, f"{task}_learning", f"{task_label(task)}: learning curves", caption
        )


def learning_caption(task: str, runs: pd.DataFrame, reference: dict, drawn: Panels) -> str:
    """The learning curves' caption up to the paper's setting: what is drawn, on which scales
    (from `drawn`), over how many seeds of the task's `runs`, and the paper's values."""
    counts = seed_counts(runs)
    return (
        f"{task_label(task)}: cost and bit errors in bits per sequence (y: {drawn.cost_scale} / "
        f"{drawn.error_scale} scale) against training sequences seen. Thick line: validation "
        "median over seeds, band: interquartile range; dashed: training cost. Seeds per model "
        f"(status done): {', '.join(f'{model_label(m)} {n}' for m, n in counts.items())}. "
        + reference_note(reference, task)
    )
