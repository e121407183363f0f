"""Speed benchmark rows (the store's speed table): a table and throughput scaling plots.

A scaling plot has one panel per size column (batch, memory size, sequence length, seeds,
threads) along which some benchmark varies with everything else held fixed; each such series is
one line, coloured by model, dashed by mode and device. When a configuration was measured more
than once, the latest measurement is used. Rows with seeds > 1 trained that many models as one;
the table shows their wall_vs_one_seed (from extra_json: time per iteration over one seed's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from ntm_bench.reports.style import (
    Saved,
    model_label,
    new_figure,
    order,
    plain_log_labels,
    save,
    styled,
)

COLUMNS = [
    "name",
    "model",
    "mode",
    "device",
    "threads",
    "batch",
    "memory_size",
    "seq_len",
    "seeds",
    "n_params",
    "seqs_per_s",
    "peak_mem_mb",
    "ratio_to_lstm",
]
SIZES = {
    "batch": "batch size (sequences)",
    "memory_size": "memory size (locations)",
    "seq_len": "sequence length (time steps)",
    "seeds": "seeds trained together (count)",
    "threads": "intra-op threads (count)",
}
DESCRIPTORS = ["model", "mode", "device", *SIZES]
LINESTYLES = ["-", "--", ":", "-."]


def latest(speed: pd.DataFrame) -> pd.DataFrame:
    """One row per benchmark configuration (model, mode, device and sizes): the latest
    measurement."""
    speed = speed.sort_values("measured_at", na_position="first", kind="stable")
    return speed.drop_duplicates(
        subset=[c for c in DESCRIPTORS if c in speed], keep="last"
    ).reset_index(drop=True)


def speed_table(speed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw, shown): the latest rows in COLUMNS order (and wall_vs_one_seed where a row has one),
    raw numbers and display text."""
    rows = latest(speed)
    raw = rows[[c for c in COLUMNS if c in speed]].reset_index(drop=True)
    extras = [
        json.loads(e) if isinstance(e, str) else {}
        for e in rows.get("extra_json", [None] * len(rows))
    ]
    if any(
        "wall_vs_one_seed" in e for e in extras
    ):  # only stores with batched-seeds rows get the column
        raw["wall_vs_one_seed"] = [e.get("wall_vs_one_seed", np.nan) for e in extras]
    shown = raw.astype(object).where(raw.notna(), "n/a")
    for column, digits in (
        ("seqs_per_s", 1),
        ("peak_mem_mb", 1),
        ("ratio_to_lstm", 3),
        ("wall_vs_one_seed", 2),
    ):
        if column in raw:
            shown[column] = [f"{v:,.{digits}f}" if pd.notna(v) else "n/a" for v in raw[column]]
    if "n_params" in raw:
        shown["n_params"] = [f"{int(v):,}" if pd.notna(v) else "n/a" for v in raw.n_params]
    return raw, shown


def series(speed: pd.DataFrame, size: str) -> list[pd.DataFrame]:
    """Groups of rows that differ only in `size` (at least two distinct values), sorted by it."""
    fixed = [c for c in DESCRIPTORS if c != size]
    found = []
    for _, group in speed.dropna(subset=[size, "seqs_per_s"]).groupby(fixed, dropna=False):
        if group[size].nunique() >= 2:
            found.append(group.sort_values(size))
    return found


def draw_panel(ax, size: str, found: list[pd.DataFrame], colors: dict, style: dict) -> None:
    """Throughput against `size` (log-log), a line per series of `found`: colour by model, line
    style by mode and device (`style`)."""
    for group in found:
        first = group.iloc[0]
        ax.plot(
            group[size],
            group.seqs_per_s,
            marker="o",
            markersize=4,
            linewidth=1.8,
            color=colors.get(first.model, "0.3"),
            linestyle=style[f"{first['mode']} on {first.device}"],
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=SIZES[size],
        ylabel="throughput (sequences / s)",
        title=f"throughput vs {size.replace('_', ' ')}",
    )
    ax.set_xticks(sorted({v for group in found for v in group[size]}))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    plain_log_labels(ax.yaxis, dense=True)


def speed_figure(speed: pd.DataFrame, colors: dict, out_dir: Path) -> Saved | None:
    """Throughput against each size column that varies; None when nothing varies."""
    speed = latest(speed)
    panels = [(size, series(speed, size)) for size in SIZES if size in speed]
    panels = [(size, found) for size, found in panels if found]
    if not panels:
        return None
    modes = sorted({f"{m} on {d}" for m, d in zip(speed["mode"], speed.device)})
    style = {mode: LINESTYLES[i % len(LINESTYLES)] for i, mode in enumerate(modes)}
    with styled():
        fig = new_figure(max(6.5, 4.8 * len(panels)), 4.6)
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
        for ax, (size, found) in zip(axes, panels):
            draw_panel(ax, size, found, colors, style)
        handles = [
            Line2D([], [], color=colors.get(m, "0.3"), linewidth=2, label=model_label(m))
            for m in order(speed.model.unique())
        ]
        handles += [Line2D([], [], color="0.3", linestyle=style[m], label=m) for m in modes]
        fig.suptitle("Training throughput scaling")
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 4),
            fontsize="small",
        )
    caption = (
        "Training throughput in sequences per second (log-log) against each size that a benchmark "
        "varied with everything else fixed; colour: model, line style: mode and device. Latest "
        "measurement per configuration."
    )
    return save(fig, out_dir, "speed_scaling", "Training throughput scaling", caption)
