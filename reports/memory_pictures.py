"""Memory pictures from the traces table: what went in, what should come out, what came out, and
(memory models) where the heads read and wrote, as time runs left to right.

One picture per (task, model), from the traced run with the lowest seed among finished runs; the
traced sequence is the same fixed one for every model of a task (benchmarks/harness/evaluate.py), so
the pictures of two models can be compared column by column.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ntm_bench.reports.style import (
    TASK_ORDER,
    Saved,
    model_label,
    new_figure,
    order,
    save,
    styled,
    task_label,
)

MAX_HEADS = 3  # per kind (read, write); priority sort's NTM has up to 8 heads
BITS_CMAP, WEIGHTS_CMAP = "Greys", "rocket_r"


def pick_traces(traces: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One trace row per (task, model): the lowest seed among runs with status done."""
    done = set(runs[runs.status == "done"].run_id)
    chosen = traces[traces.run_id.isin(done)].sort_values(["task", "model", "seed"])
    return chosen.groupby(["task", "model"], sort=False).head(1)


def unscored_spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(first, last)] time steps of each run of mask == 0."""
    spans, start = [], None
    for t, scored in enumerate(np.asarray(mask).reshape(-1) > 0):
        if not scored and start is None:
            start = t
        if scored and start is not None:
            spans.append((start, t - 1))
            start = None
    if start is not None:
        spans.append((start, len(mask) - 1))
    return spans


def show(ax, image: np.ndarray, title: str, ylabel: str, cmap: str, vmin: float, vmax: float):
    """`image` [T, rows] as rows x time, time step 0 at the left."""
    drawn = ax.imshow(
        np.asarray(image, dtype=float).T,
        aspect="auto",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.set(title=title, xlabel="time step", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(False)
    return drawn


class Head(NamedTuple):
    """One head's weightings over memory locations, [T, locations], and its name."""

    name: str
    weights: np.ndarray


def head_weights(row: pd.Series) -> list[Head]:
    """The read heads, then the write heads, of a trace row (MAX_HEADS of each kind at most);
    [] for a model without them."""
    heads = []
    for kind in ("read", "write"):
        if row[f"{kind}_weights"] is not None:
            heads += [
                Head(f"{kind} head {i}", w)
                for i, w in enumerate(np.moveaxis(row[f"{kind}_weights"], 1, 0)[:MAX_HEADS])
            ]
    return heads


def draw_data(top, row: pd.Series) -> None:
    """The input, target and output of a trace row on the (sub)figure `top`, unscored output steps
    dimmed, with their colour bar."""
    data_axes = top.subplots(1, 3)
    low = min(0.0, float(np.min(row["input"])))
    high = max(1.0, float(np.max(row["input"])))
    # inputs outside [0, 1] (repeat copy's normalized count) stretch the input's grey scale
    scale = "" if (low, high) == (0.0, 1.0) else f" (white {low:.2g}, black {high:.2g})"
    show(data_axes[0], row["input"], f"input{scale}", "input channel", BITS_CMAP, low, high)
    show(data_axes[1], row["target"], "target", "output channel", BITS_CMAP, 0, 1)
    image = show(
        data_axes[2],
        row["output"],
        "output (unscored steps dimmed)",
        "output channel",
        BITS_CMAP,
        0,
        1,
    )
    for first, last in unscored_spans(row["mask"]):
        data_axes[2].axvspan(first - 0.5, last + 0.5, color="white", alpha=0.65, linewidth=0)
    top.colorbar(image, ax=list(data_axes), label="bit value / P(bit = 1)", shrink=0.9)


def draw_heads(bottom, heads: list[Head]) -> float:
    """The heads' weightings on the subfigure `bottom`, one panel each, on one colour scale;
    returns the scale's top."""
    vmax = max(float(np.max(w)) for _, w in heads) or 1.0
    head_axes = np.atleast_1d(bottom.subplots(1, len(heads)))
    for ax, (name, weights) in zip(head_axes, heads):
        image = show(ax, weights, f"{name} weighting", "memory location", WEIGHTS_CMAP, 0, vmax)
    bottom.colorbar(
        image, ax=list(head_axes), label="weight (sums to 1 over locations)", shrink=0.9
    )
    return vmax


def memory_picture(row: pd.Series, out_dir: Path) -> Saved:
    """The picture of one trace row (see `results.store.Store.traces`)."""
    task, model, seed = row.task, row.model, int(row.seed)
    heads = head_weights(row)
    with styled():
        fig = new_figure(13, 7.4 if heads else 3.6)
        top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.25]) if heads else (fig, None)
        draw_data(top, row)
        if heads:
            vmax = draw_heads(bottom, heads)
        fig.suptitle(f"{task_label(task)}: {model_label(model)}, seed {seed}")
    caption = (
        f"{task_label(task)}, {model_label(model)} (seed {seed}): one fixed evaluation sequence at "
        "the top of the training range; channels (rows) against time steps (columns). Output: the "
        "model's probability of a 1, dimmed where it is not scored."
    )
    if heads:
        counts = [w.shape[1] for w in (row["read_weights"], row["write_weights"]) if w is not None]
        shown = f" (first {MAX_HEADS} heads of each kind)" if max(counts) > MAX_HEADS else ""
        caption += (
            f" Below: the heads' weightings over memory locations at every time step{shown}; "
            f"dark = high weight (scale 0 to {vmax:.2g})."
        )
    return save(
        fig, out_dir, f"{task}_{model}_memory", f"{task_label(task)}: {model_label(model)}", caption
    )


def memory_pictures(traces: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> list[Saved]:
    """One picture per (task, model) that has a trace, tasks and models in the report's order."""
    chosen = pick_traces(traces, runs)
    pictures = []
    for task in order(chosen.task.unique(), known=TASK_ORDER):
        rows = chosen[chosen.task == task]
        for model in order(rows.model.unique()):
            pictures.append(memory_picture(rows[rows.model == model].iloc[0], out_dir))
    return pictures
