"""The convergence regression check behind `run_suite.py --check` (CI).

`results/baselines/<profile>.json` holds, per (model, task, seed), the run_id and the step at
which the run first converged (null if it did not). A run regresses when
- it converged in the baseline and no longer converges, or
- it needs clearly more steps: more than TOLERANCE_FACTOR x the baseline's steps plus one
  evaluation interval (convergence is only seen at evaluation points).
Converging where the baseline did not, or faster, is reported but passes. Refresh the baseline
on purpose with `python run_suite.py --profile ci --update-baseline` and commit the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

BASELINE_DIR = Path(__file__).resolve().parent.parent / "results" / "baselines"
TOLERANCE_FACTOR = 1.5


def key(model: str, task: str, seed: int) -> str:
    return f"{model}/{task}/{seed}"


def write_baseline(profile: str, runs: pd.DataFrame, directory: Path = BASELINE_DIR) -> Path:
    """Write the finished runs' convergence steps as the new baseline for `profile`."""
    entries = {}
    for run in runs.itertuples():
        step = None if pd.isna(run.converged_step) else int(run.converged_step)
        entries[key(run.model, run.task, run.seed)] = {
            "run_id": run.run_id,
            "status": run.status,
            "converged_step": step,
        }
    path = Path(directory) / f"{profile}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"profile": profile, "tolerance_factor": TOLERANCE_FACTOR, "runs": entries},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    return path


def compare(baseline: dict, runs: pd.DataFrame, eval_interval: dict) -> list[tuple[str, bool, str]]:
    """(key, ok, message) for every run in both the baseline and `runs`."""
    verdicts = []
    for run in runs.itertuples():
        name = key(run.model, run.task, run.seed)
        if name not in baseline["runs"]:
            verdicts.append((name, True, "not in the baseline"))
            continue
        then = baseline["runs"][name]["converged_step"]
        now = (
            None if pd.isna(run.converged_step) or run.status != "done" else int(run.converged_step)
        )
        note = (
            ""
            if baseline["runs"][name]["run_id"] == run.run_id
            else " (config changed since the baseline)"
        )
        if then is None:
            verdicts.append((name, True, f"baseline did not converge; now {now}{note}"))
        elif now is None:
            verdicts.append(
                (
                    name,
                    False,
                    f"converged at step {then} in the baseline, now not ({run.status}){note}",
                )
            )
        else:
            limit = TOLERANCE_FACTOR * then + eval_interval[run.run_id]
            ok = now <= limit
            verdicts.append(
                (name, ok, f"converged at step {now}, baseline {then}, limit {limit:.0f}{note}")
            )
    return verdicts


def check_baseline(profile: str, runs: pd.DataFrame, specs, directory: Path = BASELINE_DIR) -> int:
    """Print the comparison; return 0 if nothing regressed, 1 otherwise (2 if no baseline)."""
    path = Path(directory) / f"{profile}.json"
    if not path.exists():
        print(f"no baseline at {path}: create one with --update-baseline")
        return 2
    baseline = json.loads(path.read_text())
    verdicts = compare(baseline, runs, {s.run_id: s.train.eval_interval for s in specs})
    print(
        f"\nconvergence check against {path} (limit = {TOLERANCE_FACTOR} x baseline steps + one eval interval):"
    )
    for name, ok, message in verdicts:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {message}")
    failed = sum(not ok for _, ok, _ in verdicts)
    print(f"check: {len(verdicts) - failed} ok, {failed} regressed")
    return 1 if failed else 0
