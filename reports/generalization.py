"""Generalization curves per task: cost and bit errors per sequence against each generalization
axis (sequence length, repeats, items), one column of panels per axis.

From the store's evals of the done runs (the joint points are reports/joint_points.py's): the
median over seeds with an interquartile band per model (reports/figures.py), the training range
shaded, and the paper's values as stars on the cost panels where the runs have the paper's task
parameters. A point that needs more vectors stored than the model's memory has locations is drawn
hollow, off the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ntm_bench.reports import reference as ref
from ntm_bench.reports.figures import draw_median, quartiles, setting_note, task_params
from ntm_bench.reports.style import (
    Saved,
    axis_label,
    model_label,
    new_figure,
    order,
    save,
    set_value_scale,
    styled,
    task_label,
)

# The markers drawn for points beyond the memory and for the paper's values, and their legend
# entries: one style each, so the legend shows what the panel draws.
HOLLOW = dict(marker="o", markersize=6, linestyle="none", markerfacecolor="white")
STAR = dict(marker="*", markersize=13, markeredgecolor="black", linestyle="none")
BEYOND_NOTE = (
    " Hollow markers: points that need more vectors stored than the model's memory has "
    "locations (a test of its size, not of generalization), left out of the lines."
)


def training_range(runs: pd.DataFrame, axis: str) -> tuple[float, float] | None:
    """(min, max) over the runs' task_params min_<axis> / max_<axis>; None when not recorded."""
    lows = [p[f"min_{axis}"] for p in task_params(runs) if f"min_{axis}" in p]
    highs = [p[f"max_{axis}"] for p in task_params(runs) if f"max_{axis}" in p]
    if not highs:
        return None
    return (min(lows) if lows else 1, max(highs))


def generalization_panel(
    ax,
    points: pd.DataFrame,
    axis: str,
    metric: str,
    span,
    entries: list,
    colors: dict,
    handles: dict,
) -> str:
    """One panel: `metric` against `axis` per model (median, IQR band), the training range
    shaded, the paper's values as stars on cost panels. Adds legend handles to `handles`;
    returns the y-scale's name."""
    values = []
    if span:
        ax.axvspan(span[0], span[1], color="0.85", zorder=0)
        handles["train"] = Patch(color="0.85", label="training range")
    for model in order(points.model.unique()):
        ours = points[points.model == model]
        values += draw_model_points(ax, ours, model, metric, colors[model], handles)
    if metric == "cost_bits" and entries:
        values += draw_paper_stars(ax, points, axis, entries, colors, handles)
    scale = set_value_scale(ax, values)
    name = "cost" if metric == "cost_bits" else "bit errors"
    ax.set(ylabel=f"{name} (bits / sequence)", title=f"{name} vs {axis}")
    return scale


def draw_model_points(
    ax, ours: pd.DataFrame, model: str, metric: str, color, handles: dict
) -> list:
    """The points `ours` of `model` on a panel, in its `color`: the median line and IQR band of
    those within its memory, hollow markers for those beyond it. Adds legend handles to
    `handles`; returns the values drawn."""
    # A point that needs more vectors stored than the memory has locations tests the memory's
    # size, not generalization: it leaves the line and is drawn hollow.
    beyond = ours.beyond_memory.fillna(False).astype(bool)
    values = draw_median(
        ax, ours[~beyond], "value", metric, color, linewidth=2, marker="o", markersize=4
    )
    hollow = quartiles(ours[beyond], "value", metric)
    if not hollow.empty:
        ax.plot(hollow.value, hollow["median"], **HOLLOW, markeredgecolor=color)
        values += list(hollow["median"])
        handles["beyond"] = Line2D(
            [], [], **HOLLOW, markeredgecolor="0.3", label="beyond the model's memory"
        )
    handles[model] = Line2D(
        [],
        [],
        color=color,
        linewidth=2,
        marker="o",
        markersize=4,
        label=model_label(model),
    )
    return values


def draw_paper_stars(
    ax, points: pd.DataFrame, axis: str, entries: list, colors: dict, handles: dict
) -> list:
    """The paper's generalization values along `axis` of the models in `points`, as stars on a
    cost panel. Adds the legend handle to `handles`; returns the values drawn."""
    values = []
    for entry in entries:
        for model in [
            m for m in entry["models"] if m in set(points.model) and entry["axis"] == axis
        ]:
            ax.plot([entry["value"]], [entry["cost_bits"]], **STAR, color=colors[model], zorder=5)
            values.append(entry["cost_bits"])
            handles["paper"] = Line2D([], [], **STAR, color="0.6", label="paper (colour: model)")
    return values


def draw_grid(
    grid,
    evals: pd.DataFrame,
    runs: pd.DataFrame,
    axes_names: list,
    entries: list,
    colors: dict,
    handles: dict,
) -> set:
    """Every panel of `grid` (rows: cost, bit errors; a column per axis of `axes_names`), from
    `evals`, with the training range of `runs`. Adds legend handles to `handles`; returns the
    y-scales' names."""
    scales = set()
    for column, axis in enumerate(axes_names):
        for row, metric in enumerate(("cost_bits", "bit_errors")):
            scales.add(
                generalization_panel(
                    grid[row, column],
                    evals[evals.axis == axis],
                    axis,
                    metric,
                    training_range(runs, axis),
                    entries,
                    colors,
                    handles,
                )
            )
            if row == 1:
                ax, tested = grid[row, column], sorted(evals[evals.axis == axis].value.unique())
                ax.set_xlabel(axis_label(axis))
                if len(tested) <= 10:
                    ax.set_xticks(tested)
    return scales


def generalization(
    task: str, runs: pd.DataFrame, evals: pd.DataFrame, reference: dict, colors: dict, out_dir: Path
) -> Saved | None:
    """Cost and bit errors per sequence against each generalization axis of one task (one column
    per axis); None when the task has no evals."""
    runs = runs[runs.task == task]
    done = set(runs[runs.status == "done"].run_id)
    evals = evals[
        (evals.task == task) & evals.run_id.isin(done) & evals.value.notna()
    ]  # joint points: joint_points.py
    if evals.empty:
        return None
    axes_names = sorted(evals.axis.unique())
    entries, difference = ref.comparable_entries(
        ref.task_reference(reference, task), "generalization", task_params(runs)
    )
    with styled():
        fig = new_figure(max(7.0, 4.6 * len(axes_names)), 7.0)
        grid = np.atleast_2d(fig.subplots(2, len(axes_names), sharex="col", squeeze=False))
        handles = {}
        scales = draw_grid(grid, evals, runs, axes_names, entries, colors, handles)
        counts = {m: evals[evals.model == m].run_id.nunique() for m in order(evals.model.unique())}
        fig.suptitle(f"{task_label(task)}: generalization")
        legend = [handles[m] for m in order(counts)] + [
            handles[k] for k in ("train", "paper", "beyond") if k in handles
        ]
        fig.legend(
            handles=legend,
            loc="outside lower center",
            fontsize="small",
            ncols=min(len(legend), 2 if len(axes_names) == 1 else 4),
        )
        caption = generalization_caption(task, counts, scales)
        if "beyond" in handles:
            caption += BEYOND_NOTE
        caption += paper_note(task, reference, entries, axes_names, difference)
        return save(
            fig, out_dir, f"{task}_generalization", f"{task_label(task)}: generalization", caption
        )


def generalization_caption(task: str, counts: dict, scales: set) -> str:
    """The caption's first sentences: what is drawn, the y-scales, the seeds per model."""
    n_text = ", ".join(f"{model_label(m)} {n}" for m, n in counts.items())
    return (
        f"{task_label(task)}: cost and bit errors in bits per sequence on fixed evaluation "
        "sets, against each generalization axis (the other axes drawn from the training "
        f"distribution); y: {' / '.join(sorted(scales))} scale. Line: median over "
        "seeds, band: interquartile range; grey: the training range. Seeds per model: "
        f"{n_text}."
    )


def paper_note(task: str, reference: dict, entries: list, axes_names: list, difference: str) -> str:
    """The caption's sentences on the paper's values: the stars' sources where `entries` has one
    on a drawn axis, and the setting note where the task differs from the paper's."""
    note = ""
    if any(e["axis"] in axes_names for e in entries):
        note += (
            " Stars: the paper's values "
            f"({'; '.join(sorted({ref.cite(reference, e['source']) for e in entries}))})."
        )
    return note + (
        setting_note(difference)
        if ref.task_reference(reference, task).get("generalization")
        else ""
    )
