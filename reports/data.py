"""One profile's frames, read from a results store for its report, and the one error a report
raises when it cannot be built.

The store is opened read-only (a report keeps the store's bytes); every frame is restricted to the
profile's runs, except the speed rows, which are store-wide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ntm_bench.results.schema import StoreError
from ntm_bench.results.store import Store


class ReportError(RuntimeError):
    """No report can be built (no store, no runs, unknown profile); the message is one line."""


@dataclass(frozen=True)
class Data:
    """The store's frames restricted to one profile's runs (speed rows are store-wide)."""

    profile: str
    runs: pd.DataFrame
    curves: pd.DataFrame
    evals: pd.DataFrame
    traces: pd.DataFrame
    speed: pd.DataFrame


def load(store_path: str | Path, profile: str | None) -> Data:
    """Read the store; raise ReportError when it is missing, empty, or has no runs of `profile`
    (or, with profile None, runs of several profiles)."""
    if not Path(store_path).is_file():
        raise ReportError(f"no results store at {store_path}: run `python run_suite.py` first")
    try:
        store = Store(store_path, readonly=True)  # a report only reads: the store keeps its bytes
    except StoreError as error:
        raise ReportError(str(error)) from None
    try:
        runs = store.runs()
        profiles = sorted(runs.profile.unique())
        if runs.empty:
            raise ReportError(
                f"results store {store_path} has no runs: run `python run_suite.py` first"
            )
        if profile is None and len(profiles) > 1:
            raise ReportError(
                f"results store {store_path} has runs of several profiles ({', '.join(profiles)}): "
                "name the one to report"
            )
        profile = profiles[0] if profile is None else profile
        runs = runs[runs.profile == profile].reset_index(drop=True)
        if runs.empty:
            raise ReportError(
                f"results store {store_path} has no runs of profile {profile!r} "
                f"(it has: {', '.join(profiles)})"
            )
        ids = set(runs.run_id)
        pick = lambda frame: frame[frame.run_id.isin(ids)].reset_index(drop=True)
        return Data(
            profile,
            runs,
            pick(store.curves()),
            pick(store.evals()),
            pick(store.traces()),
            store.speed(),
        )
    except StoreError as error:  # a damaged trace is found where it is read
        raise ReportError(str(error)) from None
    finally:
        store.close()
