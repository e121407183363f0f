"""Curriculum marks on the learning curves: thin ticks hanging from the top edge of each panel at
the training sequences where a run's curriculum (`train.curriculum` in its config_json) raises the
maximum size of its training batches, so a bump in the training cost can be read against it.

The schedule is benchmarks/harness/curriculum.py's, read from the store's frames alone: the batch
drawn after s steps has the maximum min(start + step * (s // every), max_<axis>), so the maximum
rises after every `every` steps until it reaches the task's own (task_params' max_<axis>).
"""

from __future__ import annotations

import json

import pandas as pd
from matplotlib.lines import Line2D

from ntm_bench.reports.style import model_label, order

MAX_LABELLED = (
    12  # more rises than this: their numbers would crowd the panel, the ticks alone remain
)


def growth(config: dict) -> list[tuple[int, int]]:
    """(steps done, new maximum) at each rise of the run's curriculum within its training steps;
    [] for a run without one."""
    train = config.get("train", {})
    schedule = train.get("curriculum")
    if not isinstance(schedule, dict):
        return []
    top = int(config.get("task_params", {}).get(f"max_{schedule['axis']}", schedule["start"]))
    rises, current, k = [], schedule["start"], 1
    while k * schedule["every"] < train["steps"] and current < top:
        current = min(schedule["start"] + schedule["step"] * k, top)
        rises.append((k * schedule["every"], current))
        k += 1
    return rises


def schedules(runs: pd.DataFrame) -> dict[tuple, list[str]]:
    """Distinct drawn schedules -> the models whose runs follow them. A schedule is its rises in
    training sequences (steps times batch size, the curves' x) with the curriculum that made
    them."""
    found: dict[tuple, list[str]] = {}
    for model, text in zip(runs.model, runs.config_json):
        config = json.loads(text)
        rises = growth(config)
        if rises:
            schedule, batch = config["train"]["curriculum"], config["train"]["batch_size"]
            key = (json.dumps(schedule, sort_keys=True), tuple((s * batch, m) for s, m in rises))
            found.setdefault(key, [])
            if model not in found[key]:
                found[key].append(model)
    return found


def describe(schedule: dict, last: int) -> str:
    return (
        f"max {schedule['axis']} {schedule['start']} → {last}, +{schedule['step']} every "
        f"{schedule['every']} steps"
    )


def draw_ticks(ax, rises: list[tuple[int, int]], color, xmax: float, numbered: bool) -> None:
    """One schedule's ticks on one panel, with the new maximum under each when `numbered`."""
    for x, maximum in rises:
        if x > xmax:  # a run that stopped early (stop_on_converge) never reached this rise
            continue
        ax.axvline(x, ymin=0.94, ymax=1.0, color=color, linewidth=1.2, zorder=5)
        if numbered:
            ax.text(
                x,
                0.93,
                str(maximum),
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize="x-small",
                color=color,
                zorder=5,
            )


def draw_curriculum(axes, runs: pd.DataFrame, colors: dict, xmax: float) -> tuple[list, str]:
    """Ticks at the rises of every curriculum among `runs` on each of `axes` (in the model's colour
    when one model follows it, grey when several do), numbered on the first panel when there is
    one schedule and few rises; returns (legend handles, caption sentence; "" without a
    curriculum)."""
    found = schedules(runs)
    numbered = len(found) == 1 and len(next(iter(found))[1]) <= MAX_LABELLED
    handles, texts = [], []
    for (text, rises), models in found.items():
        schedule, models = json.loads(text), order(models)
        color = colors[models[0]] if len(models) == 1 else "0.3"
        for ax in axes:
            draw_ticks(ax, rises, color, xmax, numbered and ax is axes[0])
        texts.append(
            f"{', '.join(model_label(m) for m in models)}: {describe(schedule, rises[-1][1])}"
        )
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                marker="|",
                markersize=10,
                markeredgewidth=1.5,
                linestyle="none",
                label=f"curriculum rise ({texts[-1]})",
            )
        )
    if not texts:
        return [], ""
    caption = (
        " Ticks along the top edge: where the training curriculum raises the maximum size of the "
        f"training batches{', numbered with the new maximum' if numbered else ''} "
        f"({'; '.join(texts)}); validation stays on the full training distribution, so its curves "
        "compare with runs without a curriculum."
    )
    return handles, caption
