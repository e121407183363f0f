"""What the curve figures share: the learning curves (reports/learning.py) and the
generalization curves (reports/generalization.py) both take DataFrames from `results.store`
(runs, curves, evals), draw the median over seeds with an interquartile band per model, and add
the paper's published values from reports/paper_reference.yaml where the runs' task parameters
are the paper's. Only runs with status "done" enter the medians.
"""

from __future__ import annotations

import json

import pandas as pd


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


def setting_note(difference: str) -> str:
    """The caption's sentence on paper values left out because the task differs from the paper's."""
    if not difference:
        return ""
    return (
        f" This profile's task differs from the paper's ({difference}), so only the paper's values "
        "of 0 are drawn; the others are in the reference table."
    )
