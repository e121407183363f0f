"""The sections of a report's page, each from one profile's frames (reports/data.py): the
claims' verdicts, the runs, the final-cost and comparison tables, the learning, convergence and
generalization figures, the memory pictures, the speed rows and the paper's reference values.
Each section writes its figures and tables into the report folder and returns its HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from ntm_bench.reports.verdict_figure import learned_table, verdict_figure
from ntm_bench.reports import (
    claims,
    claims_file,
    convergence,
    generalization,
    html,
    joint_points,
    learning,
    memory_pictures,
    speed,
    table_files,
    tables,
)
from ntm_bench.reports.data import Data
from ntm_bench.reports.reference import cite, reference_rows
from ntm_bench.reports.style import task_label


class Figures(NamedTuple):
    """The figures drawn before the page: per task its learning and generalization curves (None
    for a task without), the joint-point figures and the memory pictures."""

    learning: dict
    general: dict
    joint: list
    pictures: list


def bits_section(data: Data, reference: dict, out_dir: Path) -> str:
    raw = tables.bits_table(data.runs, reference)
    caption = (
        "Final validation cost and bit errors, in bits per sequence, over the seeds with status "
        "done: median, and mean ± half-width of the 95% t-interval (n/a with fewer than 2 seeds). "
        "Converged: seeds that reached < 0.1 bit errors per sequence on the validation set, out of "
        "all seeds of the pair (diverged or unfinished seeds count as not converged); sequences to "
        "converge: median over the converged seeds. Parameter counts: ours, and the paper's "
        f"({cite(reference, reference['params_source'])}). {reference.get('params_note', '')}"
    )
    paths = table_files.write_table(
        raw, tables.format_bits_table(raw), out_dir, "bits_per_sequence", caption
    )
    shown = tables.format_bits_table(raw)
    numeric = tuple(c for c in shown.columns if c not in ("task", "model", "seeds"))
    return html.note(caption) + html.table(shown, numeric) + html.downloads(paths)


def comparison_section(data: Data, out_dir: Path) -> str:
    raw = tables.comparison_table(data.runs)
    if raw.empty:
        return html.note("No task has runs of two or more models: nothing to compare.")
    caption = (
        "Pairwise comparison of the final validation cost (bits per sequence) over the seeds with "
        "status done: difference of the medians (A − B; negative: A is better), Hodges-Lehmann "
        "shift (median of all pairwise differences) and the two-sided Mann-Whitney U p-value. With "
        "few seeds even a complete separation cannot reach a small p (the note gives the smallest "
        "attainable p)."
    )
    shown = tables.format_comparison(raw)
    paths = table_files.write_table(raw, shown, out_dir, "model_comparison", caption)
    numeric = tuple(c for c in shown.columns if c not in ("task", "A", "B", "note"))
    return html.note(caption) + html.table(shown, numeric) + html.downloads(paths)


CLAIMS_NOTE = (
    "Each claim of the paper's section 4 (reports/claims.yaml, thresholds fixed before any result) "
    "tested on this profile's runs. holds: the test passes; fails: it does not; inconclusive: the "
    "data cannot decide yet (seeds pending or too few, an evaluation point missing, a comparison "
    "whose sample sizes cannot reach p < alpha, or absolute values at task sizes other than the "
    "paper's). Ours: median over seeds (IQR), or Kaplan-Meier estimates that count runs that never "
    "converged as censored; comparisons are one-sided Mann-Whitney U or log-rank tests. The paper "
    "reports one run per model, so its values have no spread; values marked ~ were read off its "
    "figures. Our training budget is far below the paper's (budget note)."
)


def claims_section(data: Data, reference: dict, out_dir: Path) -> str:
    """The verdict table: claims.yaml evaluated on the profile's frames, written as CSV, Markdown
    and LaTeX."""
    loaded = claims_file.load_claims()
    frame = claims.evaluate_claims(data.runs, data.curves, data.evals, loaded, reference)
    if frame.empty:
        return html.note("No claim of the paper concerns the tasks of this profile.")
    table = learned_table(data.runs, data.curves, loaded[0]["learned_fraction"])
    glance = html.figure(verdict_figure(frame, table, out_dir))
    folder = out_dir / "tables"
    frame.to_csv(folder / "claims.csv", index=False)
    (folder / "claims.md").write_text(f"{CLAIMS_NOTE}\n\n{claims.claims_markdown(frame)}")
    (folder / "claims.tex").write_text(table_files.to_latex(frame, CLAIMS_NOTE))
    counts = frame.verdict.value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("holds", "fails", "inconclusive"))
    shown = frame[["claim", "task", "paper", "ours", "verdict", "why", "budget_note", "id"]].rename(
        columns={"budget_note": "budget note"}
    )
    return (
        glance
        + html.note(f"{len(frame)} claims: {summary}.")
        + html.table(shown)
        + html.note(CLAIMS_NOTE)
        + html.downloads({k: f"tables/claims.{k}" for k in ("csv", "md", "tex")})
    )


def convergence_section(data: Data, colors: dict, tasks: list[str], out_dir: Path) -> str:
    """Kaplan-Meier figures per task, the KM table and the pairwise log-rank table."""
    saved = {t: convergence.km_figure(t, data.runs, data.curves, colors, out_dir) for t in tasks}
    body = tasks_section(saved, "finished runs")
    km = convergence.km_table(data.runs, data.curves)
    if km.empty:
        return body
    caption = (
        "Kaplan-Meier estimates of the training sequences to converge (< 0.1 bit errors per "
        "sequence on the validation set), over the finished (done or diverged) runs; a run that "
        "never converged is censored at its budget. Median: the first n with P(not converged by n) "
        "<= 1/2, with the 95% CI read off the log-log band; '> budget': fewer than half the runs "
        "converged."
    )
    shown = convergence.format_km_table(km)
    body += (
        html.note(caption)
        + html.table(shown, ("runs", "converged"))
        + html.downloads(table_files.write_table(km, shown, out_dir, "kaplan_meier", caption))
    )
    ranks = convergence.logrank_table(data.runs, data.curves)
    if ranks.empty:
        return body + html.note(
            "No task has finished runs of two or more models: no log-rank test."
        )
    caption = (
        "Two-sided log-rank test of each pair of models' convergence times on a task "
        "(scipy.stats.logrank; Z > 0: A converges sooner). With few seeds no test can reach a "
        "small p."
    )
    shown = convergence.format_logrank_table(ranks)
    return (
        body
        + html.note(caption)
        + html.table(shown)
        + html.downloads(table_files.write_table(ranks, shown, out_dir, "logrank", caption))
    )


def figure_section(saved: list, missing: list[str], what: str) -> str:
    """The figures `saved`, then a note naming the tasks `missing` that have no `what`."""
    body = "".join(html.figure(s) for s in saved)
    if missing:
        body += html.note(
            f"No {what} in the store for: {', '.join(task_label(t) for t in missing)}."
        )
    return body


def tasks_section(saved: dict, what: str, extra: tuple | list = ()) -> str:
    """figure_section of the figures per task `saved` (None for a task without `what`), then
    the figures `extra`."""
    return figure_section(
        [s for s in saved.values() if s] + list(extra), [t for t, s in saved.items() if not s], what
    )


def speed_section(data: Data, colors: dict, out_dir: Path) -> str:
    if data.speed.empty:
        return html.note(
            "No benchmark rows in the store yet: `python run_suite.py --bench` fills them."
        )
    raw, shown = speed.speed_table(data.speed)
    caption = (
        "Speed benchmark rows (all profiles; latest measurement per configuration): training "
        "throughput in sequences per second, peak memory in MB, and throughput relative to the "
        "LSTM of the same benchmark. Rows with seeds > 1 train that many models as one batched "
        "model (their sequences per second count every seed's); wall_vs_one_seed is their time per "
        "step over that of one seed alone."
    )
    paths = table_files.write_table(raw, shown, out_dir, "speed", caption)
    saved = speed.speed_figure(data.speed, colors, out_dir)
    numeric = tuple(c for c in shown.columns if c not in ("name", "model", "mode", "device"))
    return (
        html.note(caption)
        + html.table(shown, numeric)
        + html.downloads(paths)
        + (
            html.figure(saved)
            if saved
            else html.note("No benchmark varies a size with the rest fixed: no scaling plot.")
        )
    )


def reference_section(reference: dict, tasks: list[str]) -> str:
    rows = pd.DataFrame(reference_rows(reference, tasks))
    if rows.empty:
        return html.note("The paper has no published values for these tasks.")
    rows["value"] = ["≈" + v if a else v for v, a in zip(rows.value, rows.approx)]
    rows = rows.drop(columns="approx").rename(columns={"value": "bits / sequence"})
    return html.note(
        "Published values drawn in the figures (≈: read off a figure, approximate), from "
        "reports/paper_reference.yaml."
    ) + html.table(rows)


def draw_figures(
    data: Data, reference: dict, colors: dict, tasks: list[str], out_dir: Path
) -> Figures:
    """The learning and generalization curves, joint points and memory pictures of `tasks`."""
    learning_curves = {
        t: learning.learning_curves(t, data.runs, data.curves, reference, colors, out_dir)
        for t in tasks
    }
    general = {
        t: generalization.generalization(t, data.runs, data.evals, reference, colors, out_dir)
        for t in tasks
    }
    joint = [
        j
        for j in (
            joint_points.joint_points(t, data.runs, data.evals, colors, out_dir) for t in tasks
        )
        if j
    ]
    pictures = memory_pictures.memory_pictures(data.traces, data.runs, out_dir)
    return Figures(learning_curves, general, joint, pictures)


def page_sections(
    data: Data, reference: dict, colors: dict, tasks: list[str], out_dir: Path, store_path
) -> list[tuple[str, str, str]]:
    """The page's sections in order, as (anchor, title, HTML) for html.page; `store_path` is
    named in the runs section."""
    drawn = draw_figures(data, reference, colors, tasks, out_dir)
    warnings = "".join(html.note(w, bad=True) for w in html.mixed_configs(data.runs))
    traced = set(data.traces.task)
    return [
        ("claims", "Does the paper replicate?", claims_section(data, reference, out_dir)),
        ("runs", "Runs", html.provenance(data.runs, store_path, data.profile) + warnings),
        ("problems", "Runs that did not finish", html.problems(data.runs)),
        ("bits", "Final cost per model and task", bits_section(data, reference, out_dir)),
        ("learning", "Learning curves", tasks_section(drawn.learning, "curve points")),
        (
            "convergence",
            "Convergence (Kaplan–Meier)",
            convergence_section(data, colors, tasks, out_dir),
        ),
        (
            "generalization",
            "Generalization",
            tasks_section(drawn.general, "evaluations", drawn.joint),
        ),
        ("comparison", "Model comparison", comparison_section(data, out_dir)),
        (
            "memory",
            "Memory use",
            figure_section(drawn.pictures, [t for t in tasks if t not in traced], "traces"),
        ),
        ("speed", "Speed", speed_section(data, colors, out_dir)),
        ("paper", "Paper reference values", reference_section(reference, tasks)),
    ]
