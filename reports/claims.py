"""Does the paper replicate? The section-4 claims of reports/claims.yaml evaluated on the store's
frames.

Each claim is a measure of one (task, model) and a test (schema: the header of claims.yaml):
    converged_fraction     Kaplan-Meier P(converged by `within` sequences), default the budget
    sequences_to_converge  Kaplan-Meier median sequences (optionally / the budget); "not reached"
                           means only "> the longest run" is known (reports/survival.py)
    final_cost, eval       one value per finished seed: runs.final_cost_bits (minus
                           reference_cost_bits), or evals at `point` (field, or a channel of
                           channels_json); a diverged seed has no value and counts as +inf,
                           the worst
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
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from reports import reference as ref
from reports import survival, table_files, tables
from reports.style import MODEL_ORDER, TASK_ORDER

CLAIMS_PATH = Path(__file__).with_name("claims.yaml")
MEASURES = {
    "converged_fraction": {"within"},
    "sequences_to_converge": {"relative_to_budget"},
    "final_cost": {"minus_reference"},
    "eval": {"point", "field", "channel"},
}
BOUNDS = {"at_least": "≥", "at_most": "≤", "more_than": ">", "less_than": "<", "in_range": "in"}
CLAIM_KEYS = {
    "id",
    "task",
    "claim",
    "paper",
    "budget_note",
    "min_seeds",
    "measure",
    "test",
    "all_of",
}
COLUMNS = ["id", "task", "claim", "paper", "ours", "verdict", "why", "budget_note"]
FIELDS, CHANNELS = ("cost_bits", "bit_errors"), ("content", "end_marker")


class Part(NamedTuple):
    verdict: str  # holds | fails | inconclusive
    ours: str
    why: str


class Summary(NamedTuple):
    """What a test reads: the value known to lie in [low, high] (low == high when known exactly)."""

    low: float
    high: float
    text: str


def fail(where: str, key: str, message: str):
    raise ValueError(f"claims: {where}: {key}: {message}")


def check_part(where: str, part: dict) -> None:
    """A {measure, test[, given]} part: known kind, keys, models, fields; a test of one kind."""
    for key in set(part) - {"measure", "test", "given"}:
        fail(where, key, "unknown key of a part (known: measure, test, given)")
    if not isinstance(part.get("given", False), bool):
        fail(where, "given", f"needs true or false, got {part['given']!r}")
    measure, test = part.get("measure") or {}, part.get("test") or {}
    kind = measure.get("kind")
    if not isinstance(test.get("below", {}), dict):
        fail(where, "test.below", "needs {model: ..., alpha: ...}")
    if kind not in MEASURES:
        fail(where, "measure.kind", f"unknown kind {kind!r} (known: {', '.join(MEASURES)})")
    for key in set(measure) - MEASURES[kind] - {"kind", "model"}:
        fail(where, f"measure.{key}", f"unknown key for {kind}")
    models = [measure.get("model")] + (
        [(test.get("below") or {}).get("model")] if "below" in test else []
    )
    for model in models:
        if model not in MODEL_ORDER:
            fail(where, "model", f"unknown model {model!r} (known: {', '.join(MODEL_ORDER)})")
    if kind == "eval" and (
        not isinstance(measure.get("point"), str)
        or measure.get("field") not in FIELDS
        or (measure.get("channel") or "content") not in CHANNELS
    ):
        fail(
            where,
            "measure",
            f"eval needs point (text), field in {FIELDS}, channel in {CHANNELS} or none",
        )
    kinds = [k for k in test if k in BOUNDS or k == "below"]
    if len(kinds) != 1 or set(test) - set(kinds) - {"paper_setting"}:
        fail(
            where,
            "test",
            f"needs exactly one of {', '.join([*BOUNDS, 'below'])} (and paper_setting), got {test}",
        )
    if kinds[0] == "below" and (
        kind == "converged_fraction"
        or test.get("paper_setting")
        or set(test["below"]) - {"model", "alpha"}
    ):
        fail(
            where,
            "test.below",
            "compares final_cost, eval or sequences_to_converge; keys model, alpha",
        )
    if kinds[0] == "in_range" and not (
        isinstance(test["in_range"], list) and len(test["in_range"]) == 2
    ):
        fail(where, "test.in_range", "needs [low, high]")


def check_claim(claim: dict, sources: dict, seen: set) -> dict:
    """One entry, validated; returns it with `parts` (a list of {measure, test})."""
    where = f"claim {claim.get('id')!r}"
    for key in set(claim) - CLAIM_KEYS:
        fail(where, key, "unknown key")
    if not claim.get("id") or claim["id"] in seen:
        fail(where, "id", "missing or repeated")
    if claim.get("task") not in TASK_ORDER:
        fail(where, "task", f"unknown task {claim.get('task')!r}")
    if not claim.get("claim") or not (claim.get("paper") or {}).get("text"):
        fail(where, "claim/paper.text", "missing")
    if claim["paper"].get("source") not in sources or set(claim["paper"]) - {
        "text",
        "source",
        "approx",
    }:
        fail(
            where,
            "paper",
            f"needs text and a source of paper_reference.yaml ({', '.join(sources)}), approx",
        )
    if ("all_of" in claim) == ("measure" in claim or "test" in claim):
        fail(where, "all_of", "give either measure and test, or all_of")
    parts = claim.get("all_of") or [{"measure": claim.get("measure"), "test": claim.get("test")}]
    for part in parts:
        check_part(where, part)
    if all(part.get("given") for part in parts):
        fail(where, "all_of", "needs a part that is not `given`: a claim must test something")
    return {**claim, "parts": parts, "min_seeds": int(claim.get("min_seeds", 3))}


def load_claims(path: str | Path = CLAIMS_PATH) -> list[dict]:
    """The claims of `path`, validated (ValueError naming the claim id and key)."""
    sources = ref.load_reference()["sources"]
    seen, claims = set(), []
    for claim in yaml.safe_load(Path(path).read_text()).get("claims") or []:
        claims.append(check_claim(claim, sources, seen))
        seen.add(claim["id"])
    return claims


def number(value: float) -> str:
    return "inf" if value == math.inf else f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def readiness(group: pd.DataFrame, model: str, min_seeds: int) -> list[str]:
    """Why a model's seeds cannot decide a claim yet ([] when they can)."""
    if group.empty:
        return [f"no {model} runs"]
    unfinished = group[group.status.isin(["pending", "running"])]
    problems = []
    if len(unfinished):
        state = "/".join(sorted(unfinished.status.unique()))
        problems.append(f"{len(unfinished)} of {len(group)} {model} seeds {state}")
    finished = int(group.status.isin(survival.FINISHED).sum())
    if finished < min_seeds:
        problems.append(f"only {finished} finished {model} seeds (need {min_seeds})")
    return problems


def eval_values(finished: pd.DataFrame, evals: pd.DataFrame, measure: dict) -> pd.Series:
    """Per finished run (index run_id): the eval at `point` (field, or channel of channels_json)."""
    if "point" in evals.columns:
        rows = evals[evals.point == measure["point"]]
    else:  # a store from before evals had points: "axis=value"
        rows = evals[[f"{a}={v}" == measure["point"] for a, v in zip(evals.axis, evals.value)]]
    rows = rows[rows.run_id.isin(set(finished.run_id))]
    field, channel = measure["field"], measure.get("channel")
    if channel:
        texts = (
            rows.channels_json if "channels_json" in rows.columns else pd.Series([None] * len(rows))
        )
        picked = [
            json.loads(t).get(channel, {}).get(field, math.nan) if isinstance(t, str) else math.nan
            for t in texts
        ]
    else:
        picked = rows[field].tolist()
    return pd.Series(picked, index=rows.run_id, dtype=float).reindex(finished.run_id)


def values(group: pd.DataFrame, evals: pd.DataFrame, measure: dict) -> tuple[np.ndarray, list[str]]:
    """One value per finished seed (diverged: +inf) and the problems (values missing for done
    seeds)."""
    finished = group[group.status.isin(survival.FINISHED)]
    if measure["kind"] == "final_cost":
        picked = finished.set_index("run_id").final_cost_bits.astype(float)
        if measure.get("minus_reference"):
            picked = picked - finished.set_index("run_id").reference_cost_bits.astype(float)
        what = "final cost" + (" or reference cost" if measure.get("minus_reference") else "")
    else:
        picked, what = eval_values(finished, evals, measure), f"eval point {measure['point']}"
    diverged = (finished.status == "diverged").to_numpy()
    picked = np.where(diverged, math.inf, picked.to_numpy())
    missing, model = int(np.isnan(picked).sum()), measure["model"]
    problems = [f"{what} missing for {missing} of {len(finished)} {model} runs"] if missing else []
    return picked[~np.isnan(picked)], problems


def values_text(sample: np.ndarray) -> str:
    if len(sample) == 0:
        return "no values"
    with np.errstate(invalid="ignore"):  # interpolating between two diverged seeds: inf - inf
        q25, median, q75 = np.nan_to_num(np.percentile(sample, [25, 50, 75]), nan=math.inf)
    diverged = int(np.isinf(sample).sum())
    extra = f", {diverged} diverged counted as inf" if diverged else ""
    return f"median {number(median)} (IQR {number(q25)}–{number(q75)}), n={len(sample)}{extra}"


def survival_summary(
    group: pd.DataFrame, curves: pd.DataFrame, measure: dict
) -> tuple[Summary, list[str]]:
    """The KM value a converged_fraction or sequences_to_converge test reads, and its problems."""
    km = survival.fit(survival.observations(group, curves))
    budget, diverged = survival.budget(group, curves), int((group.status == "diverged").sum())
    if km.n == 0:
        return Summary(math.nan, math.nan, "no finished runs"), []
    counts = f"n={km.n} ({km.events} converged" + (
        f", {diverged} diverged: not converged)" if diverged else ")"
    )
    if measure["kind"] == "converged_fraction":
        at = float(measure.get("within") or budget)
        frac = survival.converged_by(km, at)
        ci = "CI n/a" if np.isnan(frac.low) else f"[{frac.low:.2f}, {frac.high:.2f}]"
        text = f"KM {frac.estimate:.2f} {ci} by {survival.count(at)} seq., {counts}"
        beyond = at > km.longest and km.last_censored
        problems = [
            f"{survival.count(at)} sequences is past the longest run ({survival.count(km.longest)})"
        ]
        return Summary(frac.estimate, frac.estimate, text), problems if beyond else []
    scale = budget if measure.get("relative_to_budget") else 1.0
    low, high = (
        (km.longest / scale, math.inf) if math.isinf(km.median) else (km.median / scale,) * 2
    )
    text = f"KM median {survival.median_text(km, budget)} seq."
    if measure.get("relative_to_budget") and not math.isinf(km.median):
        text += f" = {low:.2f} of the budget {survival.count(budget)}"
    return Summary(low, high, f"{text}, {counts}"), []


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
        summary = Summary(median, median, values_text(sample))
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
        rank = survival.sooner(obs[0], obs[1], "greater")  # greater: the first converges sooner
        p, test, problems = rank.p_value, "log-rank", [rank.note] if rank.note else []
    else:
        samples = [values(g, evals, {**measure, "model": name}) for g, name in zip(groups, names)]
        problems = samples[0][1] + samples[1][1]
        sizes, texts = [len(s[0]) for s in samples], [values_text(s[0]) for s in samples]
        p = mann_whitney(samples[0][0], samples[1][0]) if min(sizes) else math.nan
        test = "MW"
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
    verdict = "holds" if p < alpha else "fails"
    return Part(
        verdict, ours, f"{test} one-sided p={p:.3g} {'<' if p < alpha else '≥'} {alpha:g}"
    ), problems


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
        if mine.empty:
            continue
        parts = [evaluate_part(mine, curves, evals, p, claim, reference) for p in claim["parts"]]
        label = (lambda p: part_label(p["measure"]) + ": ") if len(parts) > 1 else (lambda p: "")
        verdict = combined(p for s, p in zip(claim["parts"], parts) if not s.get("given"))
        unmet = [
            f"given {part_label(s['measure'])} {p.verdict}"
            for s, p in zip(claim["parts"], parts)
            if s.get("given") and p.verdict != "holds"
        ]
        if unmet:
            verdict = "inconclusive"
        paper, why = (
            claim["paper"],
            "; ".join(unmet + [label(s) + p.why for s, p in zip(claim["parts"], parts)]),
        )
        difference = task_difference(
            mine,
            sorted({m for p in claim["parts"] for m in part_models(p)}),
            claim["task"],
            reference,
        )
        if (
            difference and "not the paper's task sizes" not in why
        ):  # comparisons hold at any size: say which
            why += f" (at our task sizes: {difference})"
        rows.append(
            {
                "id": claim["id"],
                "task": claim["task"],
                "claim": claim["claim"],
                "paper": f"{'~' if paper.get('approx') else ''}{paper['text']} [{paper['source']}]",
                "ours": "; ".join(label(s) + p.ours for s, p in zip(claim["parts"], parts)),
                "verdict": verdict,
                "why": why,
                "budget_note": claim.get("budget_note", ""),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


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
