"""The generalization points that set several axes at once (repeat copy's length 20 with 10
repeats and length 10 with 20 repeats, the paper's tests), drawn per channel group.

One panel per scored group: all channels together, then each group the task scores apart (for
repeat copy the copied content bits and the end marker), bit errors per sequence at each joint
point; a dot per seed and a bar at the median over seeds, one colour per model. The paper's claim
that the NTM "keeps copying but misplaces the end marker" beyond 10 repeats is read off the last
two panels side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ntm_bench.reports.style import (
    Saved,
    model_label,
    new_figure,
    order,
    save,
    set_value_scale,
    styled,
    task_label,
)


def joint_frame(evals: pd.DataFrame) -> pd.DataFrame:
    """The joint rows (value NA) with one bit-error column per group: `all` and each channel
    group of channels_json ('content', 'end_marker')."""
    joint = evals[evals.value.isna()].copy()
    joint["all"] = joint.bit_errors
    groups = [json.loads(text) if isinstance(text, str) else {} for text in joint.channels_json]
    for name in sorted({name for group in groups for name in group}):
        joint[name] = [group.get(name, {}).get("bit_errors", np.nan) for group in groups]
    return joint


def draw_group(
    ax, joint: pd.DataFrame, group: str, models: list, points: list, colors: dict
) -> None:
    """One panel of channel group `group` (a column of `joint`): per point a bar per model at the
    median over seeds, and a dot per seed."""
    width = 0.8 / len(models)
    drawn = []
    for i, model in enumerate(models):
        for j, point in enumerate(points):
            values = joint[(joint.model == model) & (joint.point == point)][group].dropna()
            if values.empty:
                continue
            x = j - 0.4 + width * (i + 0.5)
            ax.bar([x], [values.median()], width=width * 0.9, color=colors[model], alpha=0.35)
            ax.plot([x] * len(values), values, "o", color=colors[model], markersize=4)
            drawn += list(values)
    set_value_scale(ax, drawn)
    ax.set_xticks(range(len(points)), [p.replace(",", "\n") for p in points])
    ax.set(
        title=f"{group.replace('_', ' ')} channels" if group != "all" else "all channels",
        ylabel="bit errors / sequence",
    )


def joint_points(
    task: str, runs: pd.DataFrame, evals: pd.DataFrame, colors: dict, out_dir: Path
) -> Saved | None:
    """Bit errors per sequence at each joint point of `task`, per channel group and model; None
    when the task has no joint points among its done runs."""
    done = set(runs[(runs.task == task) & (runs.status == "done")].run_id)
    joint = joint_frame(evals[(evals.task == task) & evals.run_id.isin(done)])
    if joint.empty:
        return None
    groups = [c for c in joint.columns if c not in evals.columns or c == "all"]
    points = list(dict.fromkeys(joint.point))
    models = order(joint.model.unique())
    with styled():
        fig = new_figure(max(6.0, 3.6 * len(groups)), 4.2)
        axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False)[0])
        for ax, group in zip(axes, groups):
            draw_group(ax, joint, group, models, points, colors)
        legend = [
            Line2D([], [], color=colors[m], marker="o", linestyle="none", label=model_label(m))
            for m in models
        ]
        fig.legend(
            handles=legend, loc="outside lower center", fontsize="small", ncols=min(len(legend), 4)
        )
        fig.suptitle(f"{task_label(task)}: joint generalization points")
        caption = (
            f"{task_label(task)}: bit errors per sequence at the points that set several axes at "
            "once, scored on all output channels and on each channel group apart. Dots: seeds; "
            "bars: median over seeds."
        )
        return save(
            fig, out_dir, f"{task}_joint_points", f"{task_label(task)}: joint points", caption
        )
