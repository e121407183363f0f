"""Orchestration of a suite: register the planned runs in the store, lease and execute the ones
not yet finished, write each result as it arrives. The driver process is the only writer; a
heartbeat thread keeps its leases alive so a second suite process on the same store skips runs
this one is training, and takes them over if this one dies.
"""

from __future__ import annotations

import threading
from typing import Callable

from ntm_bench.benchmarks.harness.executors import WorkerOptions, run_local, run_ray
from ntm_bench.benchmarks.harness.plan import RunSpec, group_units
from ntm_bench.benchmarks.harness.runner import checkpoint_path, group_checkpoint
from ntm_bench.results.store import Store, make_owner

LEASE_S = 120.0  # a lease not renewed for this long is considered abandoned


class Heartbeat(threading.Thread):
    """Renews the leases in `active` every LEASE_S / 4 seconds, on its own connection."""

    def __init__(self, store_path: str, owner: str, active: set):
        super().__init__(daemon=True)
        self.store_path, self.owner, self.active = store_path, owner, active
        self.stopped = threading.Event()

    def run(self):
        store = Store(self.store_path)
        try:
            while not self.stopped.wait(LEASE_S / 4):
                store.renew(sorted(self.active), self.owner, LEASE_S)
        finally:
            store.close()


class Leases:
    """A suite's leases on its store's runs: what it trains now (`active`, kept alive by the
    Heartbeat and released if the suite stops), and for a batched group which runs share its
    one checkpoint, which goes only when all of them are stored."""

    def __init__(self, store: Store, checkpoints, log: Callable[[str], None]):
        self.store, self.checkpoints, self.log = store, checkpoints, log
        self.owner = make_owner()
        self.active: set[str] = set()
        self.group_of: dict[str, set] = {}  # run_id -> the run_ids of its batched group
        self.group_paths: dict = {}  # run_id -> its group's checkpoint

    def lease(self, unit: list[RunSpec]) -> list[RunSpec]:
        """The runs of `unit` this suite now owns (another suite may hold the rest)."""
        leased = [spec for spec in unit if self.store.lease(spec.run_id, self.owner, LEASE_S)]
        self.active.update(spec.run_id for spec in leased)
        if len(leased) > 1:  # a batched group
            members = {spec.run_id for spec in leased}
            for spec in leased:
                self.group_of[spec.run_id] = members
                self.group_paths[spec.run_id] = group_checkpoint(self.checkpoints, leased)
        return leased

    def on_result(self, spec: RunSpec, result: dict) -> None:
        """Store a run's result, drop the checkpoints it no longer needs and log a line."""
        fields = {
            k: v for k, v in result.items() if k not in ("run_id", "curves", "evals", "trace")
        }
        self.store.finish_run(
            spec.run_id, result["curves"], result["evals"], result.get("trace"), **fields
        )
        self.active.discard(spec.run_id)
        if result["status"] != "failed":  # stored now: the checkpoint has served its purpose
            checkpoint_path(self.checkpoints, spec.run_id).unlink(missing_ok=True)
            group = self.group_of.get(spec.run_id)
            if group is not None and not self.active.intersection(group):
                self.group_paths[spec.run_id].unlink(missing_ok=True)
        state = result["status"] + (f" ({result['error']})" if result.get("error") else "")
        self.log(f"  {spec.model:>8} {spec.task:<20} seed {spec.seed:<4} {state}")


def run_specs(
    store: Store,
    specs: list[RunSpec],
    options: WorkerOptions,
    jobs: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Train and evaluate every spec the store does not already hold, writing results as they
    come, with the `local` executor (`jobs` processes) or `ray` (a cluster at `ray_address`, or
    a local Ray instance)."""
    leases = Leases(store, options.checkpoint_dir, log)
    units = group_units(specs)
    heartbeat = Heartbeat(str(store.path), leases.owner, leases.active)
    heartbeat.start()
    try:
        if executor == "ray":
            run_ray(
                units,
                options,
                leases.on_result,
                lease=leases.lease,
                address=ray_address,
                num_cpus=None if ray_address else jobs,
            )
        else:
            run_local(units, options, leases.on_result, lease=leases.lease, jobs=jobs)
    finally:
        heartbeat.stopped.set()
        # interrupted runs go back to pending; checkpoints stay
        store.release(sorted(leases.active), leases.owner)
