"""Does the paper replicate? The section-4 claims of reports/claims.yaml evaluated on the store's
frames.

Each claim is a measure of one (task, model) (reports/claim_measures.py) and a test (schema:
the header of claims.yaml, checked by reports/claims_file.py).
Absolute tests (at_least, at_most, more_than, less_than, in_range) read the summary: the KM value,
or the median over seeds. A summary only known as an interval (median not reached: (longest,
inf)) decides a test only when the whole interval does. `below: {model}` tests
    costs, evals           one-sided Mann-Whitney U, H1: this model's values are stochastically
                           smaller (alternative="less"), holds when p < alpha (default 0.05);
    sequences_to_converge  one-sided log-rank, H1: this model converges sooner
                           (alternative="greater").
With n_a and n_b seeds no rank test can give a p below 1 / C(n_a + n_b, n_a) (the exact
permutation null has that many equally likely splits), so a comparison whose smallest attainable
p is not below alpha is inconclusive rather than failed.
A claim is inconclusive when a model it involves has pending or running seeds, fewer than
min_seeds (3) finished (done or diverged) seeds, a missing eval point, or, for a test marked
paper_setting, task sizes other than the paper's. all_of: holds when every part holds, fails when
any fails, else inconclusive. A part marked `given: true` is a precondition, not a finding: the
claim is tested only where it holds, and is inconclusive (saying which) when it does not. "The NTM
misplaces the end marker" is only a statement about the NTM when it copies the content at all.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ntm_bench.reports import reference as ref
from ntm_bench.reports import survival, table_files, tables
from ntm_bench.reports.claim_measures import (
    Summary,
    diverged_names,
    learned,
    number,
    readiness,
    survival_summary,
    values,
    values_text,
)
from ntm_bench.reports.claims_file import BOUNDS

COLUMNS = ["id", "task", "claim", "paper", "ours", "verdict", "why", "budget_note"]


class Part(NamedTuple):
    verdict: str  # holds | fails | inconclusive
    ours: str
    why: str


def bound_test(summary: Summary, test: dict) -> tuple[str, str]:
    """(verdict, why) of an absolute test on a summary known to lie in [low, high]."""
    ((kind, bound),) = [(k, v) for k, v in test.items() if k in BOUNDS]
    # 1 - 4/5 is 0.2, not 0.19999...
    summary = summary._replace(low=round(summary.low, 9), high=round(summary.high, 9))
    lo, hi = bound if kind == "in_range" else (bound, bound)
    holds = {
        "at_least": summary.low >= lo,
        "at_most": summary.high <= hi,
        "more_than": summary.low > lo,
        "less_than": summary.high < hi,
        "in_range": lo <= summary.low and summary.high <= hi,
    }[kind]
    fails = {
        "at_least": summary.high < lo,
        "at_most": summary.low > hi,
        "more_than": summary.high <= lo,
        "less_than": summary.low >= hi,
        "in_range": summary.high < lo or summary.low > hi,
    }[kind]
    shown = number(summary.low) if summary.low == summary.high else f"> {number(summary.low)}"
    target = f"[{number(lo)}, {number(hi)}]" if kind == "in_range" else number(lo)
    if holds or fails:
        return (
            "holds" if holds else "fails"
        ), f"{shown} {BOUNDS[kind] if holds else 'not ' + BOUNDS[kind]} {target}"
    return "inconclusive", f"{shown} does not decide {BOUNDS[kind]} {target}"


def absolute(
    group: pd.DataFrame, curves: pd.DataFrame, evals: pd.DataFrame, part: dict
) -> tuple[Part, list]:
    measure = part["measure"]
    if measure["kind"] in ("converged_fraction", "sequences_to_converge"):
        summary, problems = survival_summary(group, curves, measure)
    else:
        sample, problems = values(group, evals, measure)
        median = float(np.median(sample)) if len(sample) else math.nan
        summary = Summary(median, median, values_text(sample) + diverged_names(group))
    if np.isnan(summary.low):
        return Part("inconclusive", summary.text, "no values"), problems
    verdict, why = bound_test(summary, part["test"])
    return Part(verdict, summary.text, why), problems


def mann_whitney(a: np.ndarray, b: np.ndarray) -> float:
    """One-sided p of 'a is below b' (NaN when every value is the same)."""
    if np.all(np.concatenate([a, b]) == a[0]):
        return math.nan
    # scipy's permutation method needs two values a side; one seed cannot decide anything anyway
    # (the smallest attainable p makes the claim inconclusive), so the exact method serves it.
    method = tables.mann_whitney_method(a, b) if min(len(a), len(b)) >= 2 else "exact"
    return float(stats.mannwhitneyu(a, b, alternative="less", method=method).pvalue)


def comparison(
    groups: tuple, curves: pd.DataFrame, evals: pd.DataFrame, part: dict
) -> tuple[Part, list]:
    """The claim's model below the other: Mann-Whitney for values, log-rank for sequences to
    converge."""
    measure, other = part["measure"], part["test"]["below"]
    alpha, names = float(other.get("alpha", 0.05)), (measure["model"], other["model"])
    if measure["kind"] == "sequences_to_converge":
        obs = [survival.observations(g, curves) for g in groups]
        sizes = [len(o) for o in obs]
        texts = [survival_summary(g, curves, measure)[0].text for g in groups]
        # greater: the first converges sooner (the paper's direction); less: later
        rank = survival.sooner(obs[0], obs[1], "greater")
        p, test, problems = rank.p_value, "log-rank (exact)", [rank.note] if rank.note else []
        against = survival.sooner(obs[0], obs[1], "less").p_value
        power = lambda: rank_power(obs, alpha)
    else:
        samples = [values(g, evals, {**measure, "model": name}) for g, name in zip(groups, names)]
        problems = samples[0][1] + samples[1][1]
        sizes = [len(s[0]) for s in samples]
        texts = [values_text(s[0]) + diverged_names(g) for s, g in zip(samples, groups)]
        p = mann_whitney(samples[0][0], samples[1][0]) if min(sizes) else math.nan
        against = mann_whitney(samples[1][0], samples[0][0]) if min(sizes) else math.nan
        test, power = "MW", lambda: mann_whitney_power(samples[0][0], samples[1][0], alpha)
    ours = (
        f"{names[0]}: {texts[0]} vs {names[1]}: {texts[1]}; "
        f"{test} p={'n/a' if np.isnan(p) else f'{p:.3g}'}"
    )
    smallest = tables.smallest_p(*sizes, two_sided=False) if min(sizes) else 1.0
    if min(sizes) and smallest >= alpha:
        problems.append(
            f"{sizes[0]} vs {sizes[1]} seeds: smallest attainable p {smallest:.3g} is not below "
            f"{alpha:g}"
        )
    if np.isnan(p):
        return Part("inconclusive", ours, f"{test} undefined"), problems
    if p < alpha:
        return Part("holds", ours, f"{test} one-sided p={p:.3g} < {alpha:g}"), problems
    if against < alpha:  # the data decide against the paper's direction
        return Part(
            "fails",
            ours,
            f"{test} one-sided p={p:.3g} ≥ {alpha:g}, and p={against:.3g} < {alpha:g} for the "
            "opposite direction",
        ), problems
    return Part(
        "inconclusive",
        ours,
        f"{test} one-sided p={p:.3g} ≥ {alpha:g} either way: not decided by {sizes[0]} vs "
        f"{sizes[1]} seeds (smallest attainable p {smallest:.3g}; power {power():.2f} at the "
        "observed difference)",
    ), problems


POWER_RESAMPLES = 200  # bootstrap draws for the power of an undecided comparison


def mann_whitney_power(a: np.ndarray, b: np.ndarray, alpha: float) -> float:
    """The fraction of bootstrap resamples of both groups (each drawn from its own values, same
    sizes, a fixed seed) in which Mann-Whitney finds a below b at `alpha`: the test's power if
    the observed distributions were the true ones."""
    draw = np.random.default_rng(0)
    hits = [
        mann_whitney(draw.choice(a, len(a)), draw.choice(b, len(b))) < alpha
        for _ in range(POWER_RESAMPLES)
    ]
    return float(np.mean(hits))


def rank_power(obs: list, alpha: float) -> float:
    """As mann_whitney_power for the log-rank comparison, with scipy's asymptotic p per resample
    (the exact one costs a permutation test each)."""
    draw, hits = np.random.default_rng(0), []
    for _ in range(POWER_RESAMPLES):
        a, b = (o.iloc[draw.integers(0, len(o), len(o))] for o in obs)
        if not (a.converged.any() or b.converged.any()):
            hits.append(False)
            continue
        z = survival.logrank_statistic(a, b)
        hits.append(bool(np.isfinite(z)) and stats.norm.sf(z) < alpha)
    return float(np.mean(hits))


def task_difference(runs: pd.DataFrame, models: list[str], task: str, reference: dict) -> str:
    """How the task parameters of these models' runs differ from the paper's setting ("" when they
    do not)."""
    setting = ref.task_reference(reference, task).get("setting") or {}
    params = [
        json.loads(c).get("task_params", {}) for c in runs[runs.model.isin(models)].config_json
    ]
    return (
        ""
        if not setting or ref.setting_matches(setting, params)
        else ref.setting_difference(setting, params)
    )


def part_models(part: dict) -> list[str]:
    below = part["test"].get("below")
    return [part["measure"]["model"]] + ([below["model"]] if below else [])


def evaluate_part(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    evals: pd.DataFrame,
    part: dict,
    claim: dict,
    reference: dict,
) -> Part:
    """One {measure, test} on the claim's task's runs (failed runs are not data)."""
    runs = runs[runs.status != "failed"]
    models = part_models(part)
    groups = tuple(runs[runs.model == m] for m in models)
    problems = [p for g, m in zip(groups, models) for p in readiness(g, m, claim["min_seeds"])]
    result, found = (
        comparison(groups, curves, evals, part)
        if len(models) > 1
        else absolute(groups[0], curves, evals, part)
    )
    problems += found
    difference = task_difference(runs, models, claim["task"], reference)
    if difference and part["test"].get("paper_setting"):
        problems.append(f"not the paper's task sizes ({difference})")
    return Part("inconclusive", result.ours, "; ".join(problems)) if problems else result


def combined(parts) -> str:
    """all_of: fails when any part fails, holds when every part holds, else inconclusive."""
    verdicts = {p.verdict for p in parts}
    return "fails" if "fails" in verdicts else "holds" if verdicts == {"holds"} else "inconclusive"


def part_label(measure: dict) -> str:
    if measure["kind"] == "eval":
        return f"{measure['point']} {measure.get('channel') or ''} {measure['field']}".replace(
            "  ", " "
        )
    return {
        "converged_fraction": "P(converged)",
        "sequences_to_converge": "median sequences",
        "final_cost": "final cost",
    }[measure["kind"]]


def evaluate_claims(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    evals: pd.DataFrame,
    claims: list[dict],
    reference: dict,
) -> pd.DataFrame:
    """One row per claim whose task has runs: id, task, claim, paper, ours, verdict, why,
    budget_note."""
    rows = []
    for claim in claims:
        mine = runs[runs.task == claim["task"]]
        if not mine.empty:
            rows.append(claim_row(claim, mine, curves, evals, reference))
    return pd.DataFrame(rows, columns=COLUMNS)


def claim_row(
    claim: dict, runs: pd.DataFrame, curves: pd.DataFrame, evals: pd.DataFrame, reference: dict
) -> dict:
    """One claim (from load_claims) evaluated on the runs of its task: its row of COLUMNS."""
    parts = [evaluate_part(runs, curves, evals, p, claim, reference) for p in claim["parts"]]
    label = (lambda p: part_label(p["measure"]) + ": ") if len(parts) > 1 else (lambda p: "")
    verdict = combined(p for s, p in zip(claim["parts"], parts) if not s.get("given"))
    unmet = [
        f"given {part_label(s['measure'])} {p.verdict}"
        for s, p in zip(claim["parts"], parts)
        if s.get("given") and p.verdict != "holds"
    ]
    if claim.get("needs_learned", True):
        # rule 1 (claims.yaml): a model at a trivial cost decides nothing
        named = sorted({m for p in claim["parts"] for m in part_models(p)})
        fraction = claim.get("learned_fraction", 0.5)
        unmet += [
            found.text
            for found in (learned(runs[runs.model == m], curves, m, fraction) for m in named)
            if found.state is not True
        ]
    if unmet:
        verdict = "inconclusive"
    paper, why = (
        claim["paper"],
        "; ".join(unmet + [label(s) + p.why for s, p in zip(claim["parts"], parts)]),
    )
    difference = task_difference(
        runs,
        sorted({m for p in claim["parts"] for m in part_models(p)}),
        claim["task"],
        reference,
    )
    if difference and "not the paper's task sizes" not in why:
        # comparisons hold at any size: say which
        why += f" (at our task sizes: {difference})"
    return {
        "id": claim["id"],
        "task": claim["task"],
        "claim": claim["claim"],
        "paper": f"{'~' if paper.get('approx') else ''}{paper['text']} [{paper['source']}]",
        "ours": "; ".join(label(s) + p.ours for s, p in zip(claim["parts"], parts)),
        "verdict": verdict,
        "why": why,
        "budget_note": claim.get("budget_note", ""),
    }


def claims_markdown(frame: pd.DataFrame) -> str:
    return table_files.to_markdown(frame)


def format_claims_text(frame: pd.DataFrame) -> str:
    """A plain-text table for the terminal: a count line, then one line per claim and its
    reasons."""
    if frame.empty:
        return "Does the paper replicate? no claim's task has runs."
    counts = frame.verdict.value_counts()
    lines = [
        "Does the paper replicate? "
        + ", ".join(f"{v} {counts.get(v, 0)}" for v in ("holds", "fails", "inconclusive"))
    ]
    width = max(len(i) for i in frame.id)
    for row in frame.itertuples(index=False):
        lines.append(f"  {row.id:<{width}}  {row.verdict:<12}  {row.ours}")
        lines.append(f"  {'':<{width}}  {'':<12}  why: {row.why}")
    return "\n".join(lines)
