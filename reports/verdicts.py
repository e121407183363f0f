"""The published claims table and the check that it still holds: the verdicts of
reports/claims.yaml on a profile's published results are committed beside them
(results/published/<profile>/claims.csv and claims.md), and CI rebuilds the table from the
published runs and fails when any verdict differs (a claim that flips is news, never noise: the
runs are fixed files, so only a change of code or of claims.yaml can flip one).

    python run_suite.py --report --profile replicate --published                    # rebuild, print
    python run_suite.py --report --profile replicate --published --check            # CI
    python run_suite.py --report --profile replicate --published --update-baseline  # commit the
                                                                                      table
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ntm_bench.reports import claims, claims_file
from ntm_bench.reports.reference import load_reference

CSV, MARKDOWN = "claims.csv", "claims.md"
BEGIN, END = "<!-- claims table: written by --update-baseline -->", "<!-- end of claims table -->"


def claims_frame(runs: pd.DataFrame, curves: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """claims.yaml evaluated on the frames (one profile's runs)."""
    return claims.evaluate_claims(runs, curves, evals, claims_file.load_claims(), load_reference())


def changed_verdicts(frame: pd.DataFrame, committed: Path) -> list[str]:
    """One line per claim whose verdict differs from the committed table's (a claim added or
    removed counts too); empty when every verdict is the same."""
    if not Path(committed).is_file():
        return [f"no committed claims table at {committed} (write it with --update-baseline)"]
    before = dict(pd.read_csv(committed)[["id", "verdict"]].itertuples(index=False))
    now = dict(frame[["id", "verdict"]].itertuples(index=False))
    lines = [
        f"{key}: {before.get(key, 'absent')} -> {now.get(key, 'absent')}"
        for key in sorted(set(before) | set(now))
        if before.get(key) != now.get(key)
    ]
    return lines


def write_table(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """claims.csv (what --check compares) and claims.md (what the README shows) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / CSV, index=False)
    shown = frame[["claim", "task", "paper", "ours", "verdict", "why"]]
    (folder / MARKDOWN).write_text(claims.claims_markdown(shown) + "\n", encoding="utf-8")
    return [folder / CSV, folder / MARKDOWN]


def update_readme(frame: pd.DataFrame, readme: Path, figure: str) -> bool:
    """Replace the block between BEGIN and END in `readme` with the verdict counts, the verdict
    figure (`figure`, its path from the README: the copy beside the published table) and a
    compact table (task, claim, paper, verdict, ours, why); False when the file has no such
    block."""
    text = Path(readme).read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return False
    counts = frame.verdict.value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in ("holds", "fails", "inconclusive"))
    table = claims.claims_markdown(frame[["task", "claim", "paper", "verdict", "ours", "why"]])
    shown = f"![Every claim's verdict by task, and which models learned each task]({figure})"
    block = f"{BEGIN}\n{len(frame)} claims: {summary}.\n\n{shown}\n\n{table}\n{END}"
    head, rest = text.split(BEGIN, 1)
    Path(readme).write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")
    return True
