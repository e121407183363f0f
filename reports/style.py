"""One look for every figure: the seaborn style, the model -> colour map, names, axis scales,
saving.

Figures are `matplotlib.figure.Figure` objects drawn inside `styled()` (an rc_context), never
through pyplot, so building a report changes no global matplotlib state and needs no display:
saving uses the Agg (PNG) and SVG canvases directly.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

# Known models first, in this order, so a model keeps its colour whatever else is in the store.
MODEL_ORDER = ("ntm", "ntm_ff", "lstm", "dnc")
MODEL_LABELS = {
    "ntm": "NTM (LSTM controller)",
    "ntm_ff": "NTM (feed-forward controller)",
    "lstm": "LSTM",
    "dnc": "DNC",
}
TASK_ORDER = ("copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort")
TASK_LABELS = {
    "copy": "Copy",
    "repeat_copy": "Repeat copy",
    "associative_recall": "Associative recall",
    "ngrams": "Dynamic n-grams",
    "priority_sort": "Priority sort",
}
AXIS_LABELS = {
    "length": "sequence length (vectors)",
    "repeats": "number of repeats (count)",
    "items": "number of items (count)",
}
PALETTE = "colorblind"


@dataclass(frozen=True)
class Saved:
    """One saved figure: paths relative to the report folder, a title and a caption (HTML-safe
    text)."""

    title: str
    png: str
    svg: str
    caption: str


def order(names, known=MODEL_ORDER) -> list[str]:
    """`names` with the known ones first in their fixed order, the rest sorted."""
    names = set(names)
    return [n for n in known if n in names] + sorted(names - set(known))


def model_colors(models) -> dict:
    """The one model -> RGB map of a report: fixed colours for the known models, the next palette
    colours for others in sorted order."""
    palette = sns.color_palette(PALETTE, 10)
    colors = {name: palette[i] for i, name in enumerate(MODEL_ORDER)}
    extra = sorted(set(models) - set(colors))
    colors.update(
        {name: palette[(len(MODEL_ORDER) + i) % len(palette)] for i, name in enumerate(extra)}
    )
    return {name: colors[name] for name in order(models)}


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task.replace("_", " ").capitalize())


def axis_label(axis: str) -> str:
    return AXIS_LABELS.get(axis, f"{axis.replace('_', ' ')} (count)")


def rc() -> dict:
    """The report's rc parameters: seaborn whitegrid + paper context, editable SVG text."""
    params = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.2)}
    params.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "ntm-bench",
            "savefig.dpi": 120,
            "axes.titleweight": "bold",
            "legend.frameon": False,
            "image.interpolation": "nearest",
        }
    )
    return params


@contextmanager
def styled():
    """Draw inside this context so every figure gets the same style."""
    with mpl.rc_context(rc()):
        yield


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Figure, out_dir: Path, name: str, title: str, caption: str) -> Saved:
    """Write `name`.png (for the page) and `name`.svg (for papers) under out_dir/figures/."""
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png")
    fig.set_layout_engine("none")  # the layout is settled by the first save: do not solve it again
    fig.savefig(folder / f"{name}.svg", metadata={"Date": None})
    return Saved(title, f"figures/{name}.png", f"figures/{name}.svg", caption)


def thousands(value, _position=None) -> str:
    """Tick labels for counts of sequences: 0, 500, 20k, 1.5M."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


SEQUENCE_FORMATTER = FuncFormatter(thousands)


def set_value_scale(ax, values, ratio: float = 30.0) -> str:
    """Log y when the positive values span more than `ratio` (symlog when some are 0: linear
    between 0 and the power of ten below the smallest positive value, log above); else linear.
    Returns a phrase for captions."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    positive = values[values > 0]
    if len(positive) == 0 or positive.max() / positive.min() <= ratio:
        ax.set_yscale("linear")
        return "linear"
    if (values <= 0).any():
        ax.set_yscale("symlog", linthresh=10 ** np.floor(np.log10(positive.min())), linscale=0.6)
        ax.set_ylim(bottom=0)
        plain_log_labels(ax.yaxis)
        return "log above, linear near 0"
    ax.set_yscale("log")
    plain_log_labels(ax.yaxis, dense=np.log10(positive.max() / positive.min()) < 2.5)
    return "log"


def plain_log_labels(axis, dense: bool = False) -> None:
    """Label a log axis 0.01, 1, 100 (not 10^k: easier to read, and no mathtext to typeset, which
    dominated the drawing time); `dense` also labels 2 and 5 of each decade, for short ranges."""
    if dense:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
