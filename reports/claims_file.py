"""reports/claims.yaml, read and checked: every claim's keys, task and paper source, and of each
{measure, test[, given]} part the measure's kind, keys and models and a test of one kind, so a
typo in the data file fails loudly (a ValueError naming the claim id and the key) instead of
quietly testing something else. The schema is the header of claims.yaml; what its measures and
tests mean: reports/claim_measures.py and reports/claims.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ntm_bench.reports import reference as ref
from ntm_bench.reports.style import MODEL_ORDER, TASK_ORDER

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
    "needs_learned",
    "measure",
    "test",
    "all_of",
}
FIELDS, CHANNELS = ("cost_bits", "bit_errors"), ("content", "end_marker")


def fail(where: str, key: str, message: str):
    raise ValueError(f"claims: {where}: {key}: {message}")


def check_part(where: str, part: dict) -> None:
    """A {measure, test[, given]} part: known kind, keys, models, fields; a test of one kind."""
    for key in set(part) - {"measure", "test", "given"}:
        fail(where, key, "unknown key of a part (known: measure, test, given)")
    if not isinstance(part.get("given", False), bool):
        fail(where, "given", f"needs true or false, got {part['given']!r}")
    measure, test = part.get("measure") or {}, part.get("test") or {}
    if not isinstance(test.get("below", {}), dict):
        fail(where, "test.below", "needs {model: ..., alpha: ...}")
    check_measure(where, measure, test)
    check_test(where, measure["kind"], test)


def check_measure(where: str, measure: dict, test: dict) -> None:
    """A part's measure: a known kind with only its own keys, known models (the measure's, and the
    one `test` compares it with), an eval's point, field and channel."""
    kind = measure.get("kind")
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


def check_test(where: str, kind: str, test: dict) -> None:
    """A part's test, for a measure of `kind`: exactly one bound or `below` (and paper_setting);
    `below` only for a comparable measure; in_range a [low, high] pair."""
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
    if not isinstance(claim.get("needs_learned", True), bool):
        fail(where, "needs_learned", f"needs true or false, got {claim['needs_learned']!r}")
    return {
        **claim,
        "parts": parts,
        "min_seeds": int(claim.get("min_seeds", 3)),
        "needs_learned": claim.get("needs_learned", True),
    }


def learned_fraction(document: dict) -> float:
    """The `learned: {fraction}` rule of the file: a number in (0, 1)."""
    rule = document.get("learned")
    if not isinstance(rule, dict) or set(rule) != {"fraction"}:
        fail("learned", "fraction", "needs `learned: {fraction: f}` with 0 < f < 1")
    fraction = rule["fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        fail("learned", "fraction", f"needs a number in (0, 1), got {fraction!r}")
    return float(fraction)


def load_claims(path: str | Path = CLAIMS_PATH) -> list[dict]:
    """The claims of `path`, validated (ValueError naming the claim id and key), each with the
    file's learned rule as `learned_fraction`."""
    sources = ref.load_reference()["sources"]
    document = yaml.safe_load(Path(path).read_text()) or {}
    for key in set(document) - {"claims", "learned"}:
        fail("file", key, "unknown key (known: claims, learned)")
    fraction = learned_fraction(document)
    seen, claims = set(), []
    for claim in document.get("claims") or []:
        claims.append({**check_claim(claim, sources, seen), "learned_fraction": fraction})
        seen.add(claim["id"])
    return claims
