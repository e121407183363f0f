"""Learning curves and generalization curves per task, in the style of the paper's figures.

Both take DataFrames from `results.store` (runs, curves, evals), draw the median over seeds with
an interquartile band per model, and add the paper's published values from
reports/paper_reference.yaml. Only runs with status "done" enter the medians; the curves of
diverged or failed runs are drawn one by one, thin, ending in a cross, so they are visible but do
not bend the median.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import transforms
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports import reference as ref
from reports.curriculum import draw_curriculum
from reports.style import (
    SEQUENCE_FORMATTER,
    Saved,
    axis_label,
    model_label,
    new_figure,
    order,
    plural,
    save,
    set_value_scale,
    styled,
    task_label,
)

STRIP_START, STRIP_STEP = 1.06, 0.06  # the paper strip right of the data, in units of the last x
CONVERGED_BIT_ERRORS = (
    0.1  # the suite's convergence threshold (tasks/base.py), drawn on the bit-error panels
)
STOPPED = ("diverged", "failed")


def quartiles(frame: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """Per `by`: median, 25th and 75th percentile of `value` over the rows, and their count."""
    grouped = frame.dropna(subset=[value]).groupby(by)[value]
    return pd.DataFrame(
        {
            "median": grouped.median(),
            "q25": grouped.quantile(0.25),
            "q75": grouped.quantile(0.75),
            "n": grouped.size(),
        }
    ).reset_index()


def task_params(runs: pd.DataFrame) -> list[dict]:
    """The task parameters of every run in `runs` (from config_json)."""
    return [json.loads(text).get("task_params", {}) for text in runs.config_json]


def draw_median(ax, frame: pd.DataFrame, x: str, y: str, color, **line) -> list[float]:
    """Median line and IQR band of `y` against `x`; returns the values drawn (for the y-scale)."""
    q = quartiles(frame, x, y)
    if q.empty:
        return []
    ax.fill_between(q[x], q.q25, q.q75, color=color, alpha=0.2, linewidth=0)
    if len(q) <= 2:  # too few points for a visible line
        line = {"marker": "o", "markersize": 5, **line}
    ax.plot(q[x], q["median"], color=color, **line)
    return [*q["median"], *q.q25, *q.q75]


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


def paper_label(model: str, entry: dict) -> str:
    where = (
        f" at {ref.format_value(entry['sequences'])} seq."
        if entry.get("sequences") is not None
        else ""
    )
    return (
        f"paper, {model_label(model)}: {'≈' if entry.get('approx') else ''}"
        f"{ref.format_value(entry['cost_bits'])}{where}"
    )


def beyond_count(entries: list, models: list, xmax: float) -> int:
    """How many paper markers go into the strip right of the data (stated beyond xmax, or no x)."""
    return sum(
        1
        for e in entries
        if e.get("cost_bits") is not None
        and (e.get("sequences") is None or ref.as_range(e["sequences"])[0] > xmax)
        for m in e["models"]
        if m in models
    )


def draw_paper_values(
    ax, entries: list, models: list, colors: dict, xmax: float, scale: str
) -> list:
    """The paper's learning-curve values on a cost panel: a star where the stated x lies inside
    the data's range; a diamond (with a bar for a range) in a grey strip right of the data for
    values stated at more sequences than trained, or with no x. A value of 0 on a log axis sits
    on the bottom edge as a downward triangle. Returns legend handles."""
    handles, beyond = [], 0
    for entry in entries:
        cost, seqs = ref.as_range(entry.get("cost_bits")), ref.as_range(entry.get("sequences"))
        if cost is None:  # a statement without a number: listed on the page only
            continue
        for model in [m for m in entry["models"] if m in models]:
            inside = seqs is not None and seqs[0] <= xmax
            x = (
                float(np.mean(seqs))
                if inside
                else xmax * (STRIP_START + STRIP_STEP * (beyond + 0.5))
            )
            beyond += not inside
            y, yerr, xform = (
                float(np.mean(cost)),
                [[np.mean(cost) - cost[0]], [cost[1] - np.mean(cost)]],
                ax.transData,
            )
            on_edge = scale == "log" and cost[1] <= 0  # "near 0" has no place on a log axis
            if on_edge:
                xform = transforms.blended_transform_factory(ax.transData, ax.transAxes)
                y, yerr = 0.04, None  # just above the bottom edge, in axes units
            marker = "v" if on_edge else ("*" if inside else "D")
            xerr = [[x - seqs[0]], [seqs[1] - x]] if inside else None
            ax.errorbar(
                [x],
                [y],
                xerr=xerr,
                yerr=yerr,
                transform=xform,
                clip_on=False,
                color=colors[model],
                marker=marker,
                markersize=11 if marker == "*" else 8,
                markeredgecolor="black",
                linestyle="none",
                elinewidth=2,
                capsize=3,
                zorder=6,
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    color=colors[model],
                    marker=marker,
                    markersize=9,
                    markeredgecolor="black",
                    linestyle="none",
                    label=paper_label(model, entry),
                )
            )
    if beyond:
        right = xmax * (STRIP_START + STRIP_STEP * beyond)
        ax.axvspan(xmax * (STRIP_START - 0.01), right, color="0.93", zorder=0, linewidth=0)
        ax.text(
            xmax * (STRIP_START + STRIP_STEP * beyond / 2),
            0.98,
            "paper",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize="small",
            color="0.3",
            zorder=7,
            bbox={"facecolor": "0.93", "edgecolor": "none", "pad": 1},
        )
    return handles


def draw_levels(ax, entries: dict, runs: pd.DataFrame) -> tuple[list, list]:
    """Horizontal lines: the store's Bayes-optimal cost on the validation set (n-grams), and the
    paper's optimum and chance level where the runs have the paper's task parameters.
    Returns (legend handles, values)."""
    handles, values = [], []
    for value in runs.reference_cost_bits.dropna().round(3).unique():
        ax.axhline(value, color="black", linewidth=1.2)
        handles.append(
            Line2D([], [], color="black", label=f"Bayes-optimal on our validation set: {value:.2f}")
        )
        values.append(value)
    params = task_params(runs)
    for kind, style, text in (
        ("optimum_cost_bits", ":", "optimum (paper's setting)"),
        ("chance_cost_bits", "-.", "chance, predicting 0.5"),
    ):
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
) -> tuple[list, list, list]:
    """Per model the medians of the done runs (validation cost and bit errors, training cost
    dashed), then each diverged or failed run's validation curve ending in a cross.
    Returns (legend handles, cost values drawn, bit-error values drawn)."""
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
            bucket += list(run[column].dropna())
    handles += [
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
    return handles, cost_values, error_values


def sequence_axis(axes, xmax: float, strip: int) -> None:
    """x: training sequences from 0 to the last point, plus room for `strip` paper markers (no
    ticks there: the strip is not on the data's scale)."""
    for ax in axes:
        ax.set_xlabel("training sequences seen")
        ax.xaxis.set_major_formatter(SEQUENCE_FORMATTER)
        ax.set_xlim(0, xmax * (STRIP_START + STRIP_STEP * strip if strip else 1.02))
        ax.set_xticks([t for t in ax.get_xticks() if t <= xmax * 1.001])


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
    done, stopped = curves[curves.status == "done"], curves[curves.status.isin(STOPPED)]
    xmax = float(curves.sequences.max())
    counts = seed_counts(runs)
    models = order(curves.model.unique())
    entries = ref.task_reference(reference, task)
    curve, difference = ref.comparable_entries(entries, "curve", task_params(runs))
    with styled():
        fig = new_figure(11, 5.6)
        cost_ax, error_ax = fig.subplots(1, 2, sharex=True)
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
        handles += level_handles + draw_paper_values(
            cost_ax, curve, models, colors, xmax, cost_scale
        )
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
        cost_ax.set(title="cost (validation; dashed: training)", ylabel="cost (bits / sequence)")
        error_ax.set(title="bit errors (validation)", ylabel="bit errors (bits / sequence)")
        sequence_axis((cost_ax, error_ax), xmax, beyond_count(curve, models, xmax))
        rise_handles, rise_caption = draw_curriculum((cost_ax, error_ax), runs, colors, xmax)
        handles += rise_handles
        fig.suptitle(f"{task_label(task)}: learning curves")
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=2 if len(handles) > 6 else 3,
            fontsize="small",
        )
        caption = (
            f"{task_label(task)}: cost and bit errors in bits per sequence (y: {cost_scale} / "
            f"{error_scale} scale) against training sequences seen. Thick line: validation median "
            "over seeds, band: interquartile range; dashed: training cost. Seeds per model (status "
            f"done): {', '.join(f'{model_label(m)} {n}' for m, n in counts.items())}. "
            + reference_note(reference, task)
            + setting_note(difference)
            + rise_caption
        )
        return save(
            fig, out_dir, f"{task}_learning", f"{task_label(task)}: learning curves", caption
        )


def reference_note(reference: dict, task: str) -> str:
    """The caption's sentence on the paper's values for `task` and their source."""
    entries = ref.task_reference(reference, task)
    keys = {e["source"] for kind in ("curve", "generalization") for e in entries.get(kind) or []}
    if not keys:
        return "The paper has no published values for this task."
    return (
        "Markers with a black edge are the paper's values: a star where the paper's number of "
        "training sequences lies inside the plotted range, a diamond (with a bar for a range) in "
        "the grey strip right of the data where it lies beyond, and a downward triangle on the "
        "bottom edge for ≈0 on a log axis. Source: "
        f"{'; '.join(ref.cite(reference, k) for k in sorted(keys))}; values marked ≈ in the "
        "reference table are read off figures. The paper trained with its own sizes and "
        "hyperparameters."
    )


def setting_note(difference: str) -> str:
    """The caption's sentence on paper values left out because the task differs from the paper's."""
    if not difference:
        return ""
    return (
        f" This profile's task differs from the paper's ({difference}), so only the paper's values "
        "of 0 are drawn; the others are in the reference table."
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
        # A point that needs more vectors stored than the memory has locations tests the memory's
        # size, not generalization: it leaves the line and is drawn hollow.
        beyond = ours.beyond_memory.fillna(False).astype(bool)
        values += draw_median(
            ax, ours[~beyond], "value", metric, colors[model], linewidth=2, marker="o", markersize=4
        )
        hollow = quartiles(ours[beyond], "value", metric)
        if not hollow.empty:
            ax.plot(
                hollow.value,
                hollow["median"],
                marker="o",
                markersize=6,
                linestyle="none",
                markerfacecolor="white",
                markeredgecolor=colors[model],
            )
            values += list(hollow["median"])
            handles["beyond"] = Line2D(
                [],
                [],
                marker="o",
                markersize=6,
                linestyle="none",
                markerfacecolor="white",
                markeredgecolor="0.3",
                label="beyond the model's memory",
            )
        handles[model] = Line2D(
            [],
            [],
            color=colors[model],
            linewidth=2,
            marker="o",
            markersize=4,
            label=model_label(model),
        )
    for entry in entries if metric == "cost_bits" and entries else []:
        for model in [
            m for m in entry["models"] if m in set(points.model) and entry["axis"] == axis
        ]:
            ax.plot(
                [entry["value"]],
                [entry["cost_bits"]],
                marker="*",
                markersize=13,
                color=colors[model],
                markeredgecolor="black",
                linestyle="none",
                zorder=5,
            )
            values.append(entry["cost_bits"])
            handles["paper"] = Line2D(
                [],
                [],
                marker="*",
                markersize=13,
                color="0.6",
                markeredgecolor="black",
                linestyle="none",
                label="paper (colour: model)",
            )
    scale = set_value_scale(ax, values)
    name = "cost" if metric == "cost_bits" else "bit errors"
    ax.set(ylabel=f"{name} (bits / sequence)", title=f"{name} vs {axis}")
    return scale


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
        handles, scales = {}, set()
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
        n_text = ", ".join(f"{model_label(m)} {n}" for m, n in counts.items())
        caption = (
            f"{task_label(task)}: cost and bit errors in bits per sequence on fixed evaluation "
            "sets, against each generalization axis (the other axes drawn from the training "
            f"distribution); y: {' / '.join(sorted(scales))} scale. Line: median over "
            "seeds, band: interquartile range; grey: the training range. Seeds per model: "
            f"{n_text}."
        )
        if "beyond" in handles:
            caption += (
                " Hollow markers: points that need more vectors stored than the model's memory has "
                "locations (a test of its size, not of generalization), left out of the lines."
            )
        if any(e["axis"] in axes_names for e in entries):
            caption += (
                " Stars: the paper's values "
                f"({'; '.join(sorted({ref.cite(reference, e['source']) for e in entries}))})."
            )
        caption += (
            setting_note(difference)
            if ref.task_reference(reference, task).get("generalization")
            else ""
        )
        return save(
            fig, out_dir, f"{task}_generalization", f"{task_label(task)}: generalization", caption
        )
