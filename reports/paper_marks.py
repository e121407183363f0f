"""The paper's learning-curve values on a cost panel, the x axis that makes room for them, and
the caption's sentence on them.

A value whose number of training sequences lies inside the plotted range is a star at that x; one
stated at more sequences than were trained, or with no x, is a diamond (with a bar for a range)
in a grey strip right of the data, which is not on the data's scale. A value of 0 on a log axis
sits on the bottom edge as a downward triangle.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from matplotlib import transforms
from matplotlib.lines import Line2D

from ntm_bench.reports import reference as ref
from ntm_bench.reports.style import SEQUENCE_FORMATTER, model_label

STRIP_START, STRIP_STEP = 1.06, 0.06  # the paper strip right of the data, in units of the last x


class Mark(NamedTuple):
    """Where one paper value goes on a panel: its point and error bars in `transform`'s
    coordinates, its marker, and whether its x lies inside the data (not in the strip)."""

    x: float
    y: float
    xerr: list | None
    yerr: list | None
    transform: object
    marker: str
    inside: bool


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


def place_mark(ax, cost: tuple, seqs: tuple | None, xmax: float, beyond: int, scale: str) -> Mark:
    """Where the value `cost` stated at `seqs` sequences (ranges, or None) goes on `ax`, with
    `beyond` marks already in the strip and the panel's y-scale `scale`."""
    inside = seqs is not None and seqs[0] <= xmax
    x = float(np.mean(seqs)) if inside else xmax * (STRIP_START + STRIP_STEP * (beyond + 0.5))
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
    return Mark(x, y, xerr, yerr, xform, marker, inside)


def draw_mark(ax, mark: Mark, color, label: str) -> Line2D:
    """One paper value on `ax` at `mark`, in the model's colour; returns its legend handle."""
    ax.errorbar(
        [mark.x],
        [mark.y],
        xerr=mark.xerr,
        yerr=mark.yerr,
        transform=mark.transform,
        clip_on=False,
        color=color,
        marker=mark.marker,
        markersize=11 if mark.marker == "*" else 8,
        markeredgecolor="black",
        linestyle="none",
        elinewidth=2,
        capsize=3,
        zorder=6,
    )
    return Line2D(
        [],
        [],
        color=color,
        marker=mark.marker,
        markersize=9,
        markeredgecolor="black",
        linestyle="none",
        label=label,
    )


def draw_strip(ax, xmax: float, beyond: int) -> None:
    """The grey strip right of the data (last x `xmax`) for `beyond` marks, titled "paper"."""
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


def draw_paper_values(
    ax, entries: list, models: list, colors: dict, xmax: float, scale: str
) -> list:
    """The paper's learning-curve values of `models` on a cost panel with y-scale `scale` (see
    the module docstring), the strip where some lie beyond `xmax`. Returns legend handles."""
    handles, beyond = [], 0
    for entry in entries:
        cost, seqs = ref.as_range(entry.get("cost_bits")), ref.as_range(entry.get("sequences"))
        if cost is None:  # a statement without a number: listed on the page only
            continue
        for model in [m for m in entry["models"] if m in models]:
            mark = place_mark(ax, cost, seqs, xmax, beyond, scale)
            beyond += not mark.inside
            handles.append(draw_mark(ax, mark, colors[model], paper_label(model, entry)))
    if beyond:
        draw_strip(ax, xmax, beyond)
    return handles


def sequence_axis(axes, xmax: float, strip: int) -> None:
    """x: training sequences from 0 to the last point, plus room for `strip` paper markers (no
    ticks there: the strip is not on the data's scale)."""
    for ax in axes:
        ax.set_xlabel("training sequences seen")
        ax.xaxis.set_major_formatter(SEQUENCE_FORMATTER)
        ax.set_xlim(0, xmax * (STRIP_START + STRIP_STEP * strip if strip else 1.02))
        ax.set_xticks([t for t in ax.get_xticks() if t <= xmax * 1.001])


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
