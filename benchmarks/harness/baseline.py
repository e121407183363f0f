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
import sys
from pathlib import Path

import pandas as pd

from ntm_bench.benchmarks.harness.config import ConfigError

BASELINE_DIR = Path(__file__).resolve().parents[2] / "results" / "baselines"
TOLERANCE_FACTOR = 1.5


def key(model: str, task: str, seed: int) -> str:
    return f"{model}/{task}/{seed}"


def write_baseline(profile: str, runs: pd.DataFrame, directory: Path | None = None) -> Path:
    """Write the finished runs' convergence steps as the new baseline for `profile`."""
    entries = {}
    for run in runs.itertuples():
        step = None if pd.isna(run.converged_step) else int(run.converged_step)
        entries[key(run.model, run.task, run.seed)] = {
            "run_id": run.run_id,
            "status": run.status,
            "converged_step": step,
        }
    path = Path(directory or BASELINE_DIR) / f"{profile}.json"
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


def load_baseline(profile: str, directory: Path | None = None) -> dict:
    """The baseline of `profile`, checked: a JSON object whose "runs" maps "model/task/seed" to
    {"run_id": text, "converged_step": a step or null, ...}. ConfigError naming the file (and the
    key) when it is missing, not JSON or not of that shape: `run_suite.py check` calls this before
    it trains anything, so a baseline it cannot read costs no training. `directory` defaults
    to BASELINE_DIR, read at the call (tests point it elsewhere)."""
    path = Path(directory or BASELINE_DIR) / f"{profile}.json"
    if not path.is_file():
        raise ConfigError(f"no baseline at {path}: create one with --update-baseline")
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"baseline {path} cannot be read: {' '.join(str(error).split())}"
        ) from None
    if not isinstance(baseline, dict) or not isinstance(baseline.get("runs"), dict):
        raise ConfigError(f"baseline {path}: expected an object with a 'runs' object")
    if baseline.get("profile", profile) != profile:
        raise ConfigError(f"baseline {path}: 'profile' is {baseline['profile']!r}, not {profile!r}")
    for name, entry in baseline["runs"].items():
        check_entry(path, name, entry)
    return baseline


def check_entry(path: Path, name: str, entry) -> None:
    """One run of a baseline: what compare() reads, of the types it needs; ConfigError naming
    the file and the key."""
    where = f"baseline {path}: runs.{name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected an object, got {entry!r}")
    for field in ("run_id", "converged_step"):
        if field not in entry:
            raise ConfigError(f"{where}: missing {field!r}")
    if not isinstance(entry["run_id"], str):
        raise ConfigError(f"{where}.run_id: expected text, got {entry['run_id']!r}")
    step = entry["converged_step"]
    # bool is an int to Python, and a step is never negative
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ConfigError(f"{where}.converged_step: expected a step >= 0 or null, got {step!r}")


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


def check_baseline(profile: str, runs: pd.DataFrame, specs, directory: Path | None = None) -> int:
    """Print the comparison; return 0 if nothing regressed, 1 otherwise, and 2, with one line on
    stderr, if the baseline cannot be read (load_baseline; checked before training too)."""
    path = Path(directory or BASELINE_DIR) / f"{profile}.json"
    try:
        baseline = load_baseline(profile, directory)
    except ConfigError as error:
        print(f"check: {error}", file=sys.stderr)
        return 2
    verdicts = compare(baseline, runs, {s.run_id: s.train.eval_interval for s in specs})
    print(
        f"\nconvergence check against {path} (limit = {TOLERANCE_FACTOR} x baseline steps + one "
        "eval interval):"
    )
    for name, ok, message in verdicts:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {message}")
    failed = sum(not ok for _, ok, _ in verdicts)
    print(f"check: {len(verdicts) - failed} ok, {failed} regressed")
    return 1 if failed else 0
