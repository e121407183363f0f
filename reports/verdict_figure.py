"""The answer first: one figure with every claim's verdict, grouped by task, and beside it whether
each model learned each task (reports/claims.yaml, rule 1), since a verdict over a model that
learned nothing is inconclusive by rule and the reader should see why at a glance.

    task row    one cell per claim of the task: green holds, red fails, grey inconclusive
    learned     one cell per (task, model): learned / not learned / unknown (no or old runs)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.patches import Rectangle

from ntm_bench.reports.claim_measures import learned
from ntm_bench.reports.style import Saved, model_label, new_figure, order, save, styled, task_label

COLORS = {"holds": "#4c9f70", "fails": "#c8553d", "inconclusive": "#c9c9c9"}
LEARNED = {True: ("#4c9f70", "yes"), False: ("#c8553d", "no"), None: ("#eeeeee", "?")}


def learned_table(runs: pd.DataFrame, curves: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Per (task, model) of `runs`: whether the model learned the task (True, False, None: cannot
    tell), and the rule's text."""
    rows = [
        {"task": task, "model": model, **learned(group, curves, model, fraction)._asdict()}
        for (task, model), group in runs.groupby(["task", "model"])
    ]
    return pd.DataFrame(rows, columns=["task", "model", "state", "text", "slope"])


def learned_cell(state: bool | None, slope) -> tuple[str, str]:
    """A learned cell's (color, text): yes / no / ?, and under a "no" whether most of the model's
    runs were still falling at the end of their budget (claim_measures.Slope) or had gone flat."""
    known = state in (True, False)  # a table's states are numpy bools: no `is False`
    color, text = LEARNED[bool(state) if known else None]
    if known and not state and slope is not None:
        text += "\nfalling" if 2 * slope.falling > slope.runs else "\nflat"
    return color, text


def short(claim_id: str, task: str) -> str:
    """A claim's cell label: its id without the task prefix, broken at underscores to fit."""
    words = claim_id.removeprefix(task + "_").split("_")
    lines, line = [], ""
    for word in words:
        if line and len(line) + len(word) > 12:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def verdict_figure(frame: pd.DataFrame, table: pd.DataFrame, out_dir: Path) -> Saved:
    """The figure of the module docstring from the claims frame and learned_table."""
    tasks = [t for t in dict.fromkeys(frame.task)]
    models = order(table.model.unique())
    widest = max(frame.task.value_counts())
    with styled():
        fig = new_figure(1.25 * (widest + len(models)) + 2.2, 0.95 * len(tasks) + 1.1)
        ax = fig.add_subplot()
        for row, task in enumerate(tasks):
            y = len(tasks) - 1 - row
            ax.text(-0.15, y + 0.5, task_label(task), ha="right", va="center", fontsize=9)
            for col, claim in enumerate(frame[frame.task == task].itertuples()):
                ax.add_patch(Rectangle((col, y + 0.05), 0.95, 0.9, color=COLORS[claim.verdict]))
                ax.text(
                    col + 0.475,
                    y + 0.5,
                    short(claim.id, task),
                    ha="center",
                    va="center",
                    fontsize=6,
                )
            for col, model in enumerate(models):
                found = table[(table.task == task) & (table.model == model)]
                state = found.state.iloc[0] if len(found) else None
                slope = found.slope.iloc[0] if len(found) else None
                color, text = learned_cell(state, slope)
                x = widest + 0.6 + col
                ax.add_patch(Rectangle((x, y + 0.05), 0.95, 0.9, color=color))
                ax.text(x + 0.475, y + 0.5, text, ha="center", va="center", fontsize=7)
        for col, model in enumerate(models):
            ax.text(
                widest + 1.075 + col,
                len(tasks) + 0.1,
                model_label(model),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=20,
            )
        ax.text(widest / 2, len(tasks) + 0.1, "claims", ha="center", va="bottom", fontsize=9)
        ax.text(
            widest + 0.6 + len(models) / 2,
            len(tasks) + 0.75,
            "learned the task?",
            ha="center",
            va="bottom",
            fontsize=9,
        )
        ax.set_xlim(-0.1, widest + 0.7 + len(models))
        ax.set_ylim(0, len(tasks) + 1.1)
        ax.axis("off")
        counts = frame.verdict.value_counts()
        handles = [Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
        labels = [f"{v} ({counts.get(v, 0)})" for v in COLORS]
        fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
        caption = (
            "Every claim of the paper (reports/claims.yaml) as a cell, by task: green holds, "
            "red fails, grey inconclusive. Right: whether each model learned each task at "
            "training sizes (median final cost below half the best trivial cost; n-grams: half "
            "its excess over the optimum); a claim naming a model that did not learn is "
            "inconclusive by rule. Under a 'no': 'falling' where most of its runs' validation "
            "cost still fell over the last quarter of the budget (Theil-Sen slope, its 95% "
            "interval below zero), else 'flat'."
        )
        return save(fig, out_dir, "verdicts", "Verdicts at a glance", caption)
