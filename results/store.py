"""The results store: SQLite (stdlib sqlite3), WAL mode, one writer, loaders returning DataFrames.

Tables:
    runs    one row per run_id: identity, status (pending|running|done|diverged|failed),
            provenance (device, threads, torch version, git sha, and the numeric fingerprint
            that says where its floats reproduce bit for bit), timing, convergence
    curves  training and validation points: (run_id, split, step) is unique
    evals   generalization points: (run_id, point) is unique; `point` names the sizes set
            ("length=120", or "length=20,repeats=10" for a joint point, whose value is NULL),
            `channels_json` the task's channel groups scored apart (repeat copy's content bits and
            end marker), `memory_needed` the vectors the point needs stored and `beyond_memory`
            whether the model's memory holds fewer
    speed   benchmark rows (benchmarks/speed_suite/: one per measured configuration), each with
            the fingerprint of the processor it measured
    traces  one fixed evaluation sequence per run: input, target, output and (memory models)
            the read/write weightings over time, as JSON arrays, for the memory pictures

Every write is one transaction and every row write is an upsert keyed by its natural key, so a
process killed at any moment leaves the store consistent and a repeated write adds no duplicate.
The schema (results/schema.py) and its version, kept in `PRAGMA user_version`, are checked on
every open: a newer, unknown, foreign or damaged file is refused with a StoreError that names the
file and what is wrong, before anything is written. Commands that only read open it `readonly`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ntm_bench.results import schema
from ntm_bench.results.schema import StoreError  # raised here and by every opening check

TRACE_ARRAYS = ("input", "target", "mask", "output", "read_weights", "write_weights")
STATUSES = ("pending", "running", "done", "diverged", "failed")


def status_counts(runs: pd.DataFrame) -> dict:
    """How a group of runs (rows of Store.runs()) stands: seeds, and how many are done, diverged
    and failed; the first columns of the suite's summary and of the report's bits table."""
    return {
        "seeds": len(runs),
        "done": int((runs.status == "done").sum()),
        "diverged": int((runs.status == "diverged").sum()),
        "failed": int((runs.status == "failed").sum()),
    }


RUN_COLUMNS = (
    "model",
    "task",
    "seed",
    "profile",
    "config_json",
    "status",
    "n_params",
    "device",
    "threads",
    "torch_version",
    "git_sha",
    "started_at",
    "finished_at",
    "wall_s",
    "converged_step",
    "converged_sequences",
    "final_cost_bits",
    "final_bit_errors",
    "reference_cost_bits",
    "error",
    "owner",
    "lease_until",
    "fingerprint_json",
    "trivial_json",
)


def make_owner() -> str:
    """An owner id for leases: host, process id and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str | None) -> bool:
    """False only when `owner` is a process on this host that no longer exists."""
    try:
        host, pid, _ = (owner or "").split(":")
        if host != socket.gethostname():
            return True
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True


class Store:
    """A results store at `path`. Opened for writing (the default) a missing file is created with
    its folder and an older schema is upgraded; opened `readonly`, nothing on disk is written (an
    older schema is upgraded in a copy in memory) and a missing file is an error. Either way a
    file that is not a complete store of this schema version raises StoreError before any
    write, so a refused store keeps its bytes."""

    def __init__(self, path: str | Path, before_commit=None, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.before_commit = (
            before_commit  # called inside finish_run's transaction (fault-injection tests)
        )
        self.db = schema.open_connection(self.path, readonly)

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # -- writes --------------------------------------------------------------------------------

    def status(self, run_id: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def register(
        self, run_id: str, model: str, task: str, seed: int, profile: str, config: dict
    ) -> None:
        """Insert the run as pending if the store does not know it yet."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_id, model, task, seed, profile, config_json, "
                "status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                (run_id, model, task, seed, profile, json.dumps(config, sort_keys=True)),
            )

    def update_run(self, run_id: str, **fields) -> None:
        """Set columns of a run's row (names from RUN_COLUMNS)."""
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown runs columns: {sorted(unknown)}")
        if fields.get("status", "done") not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as db:
            db.execute(
                f"UPDATE runs SET {assignments} WHERE run_id = ?", (*fields.values(), run_id)
            )

    def lease(self, run_id: str, owner: str, lease_s: float) -> bool:
        """Atomically mark a run as ours to train; False if it is done, diverged, or running under
        a live lease of another process. A lease is live until it expires, or, on this
        host, until its owner process exits (so a rerun right after a kill resumes at once)."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, owner, lease_until FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None or row[0] in ("done", "diverged"):
                return False
            status, holder, until = row
            if (
                status == "running"
                and holder != owner
                and until is not None
                and until > now
                and owner_alive(holder)
            ):
                return False
            db.execute(
                "UPDATE runs SET status = 'running', owner = ?, lease_until = ?, error = NULL "
                "WHERE run_id = ?",
                (owner, now + lease_s, run_id),
            )
            return True

    def renew(self, run_ids: list[str], owner: str, lease_s: float) -> None:
        """Extend our leases on `run_ids` (the driver's heartbeat)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE runs SET lease_until = ? WHERE run_id = ? AND owner = ? "
                "AND status = 'running'",
                [(time.time() + lease_s, run_id, owner) for run_id in run_ids],
            )

    def release(self, run_ids: list[str], owner: str) -> None:
        """Give back leases without a result (e.g. on Ctrl-C): the runs become pending again."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE runs SET status = 'pending', owner = NULL, lease_until = NULL "
                "WHERE run_id = ? AND owner = ? AND status = 'running'",
                [(r, owner) for r in run_ids],
            )

    def finish_run(
        self,
        run_id: str,
        curves: list[dict],
        evals: list[dict],
        trace: dict | None = None,
        **fields,
    ) -> None:
        """Write a finished (or diverged/failed) run's curves, evals, trace ({name: nested lists})
        and fields in one transaction."""
        with self.transaction() as db:
            if trace:
                db.execute(
                    "INSERT OR REPLACE INTO traces (run_id, arrays_json) VALUES (?, ?)",
                    (run_id, json.dumps(trace)),
                )
            db.executemany(
                "INSERT OR REPLACE INTO curves (run_id, split, step, sequences, cost_bits, "
                "bit_errors, wall_s) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        c["split"],
                        c["step"],
                        c["sequences"],
                        c["cost_bits"],
                        c["bit_errors"],
                        c["wall_s"],
                    )
                    for c in curves
                ],
            )
            self.write_evals(run_id, evals)
            self.update_run(run_id, finished_at=time.time(), owner=None, lease_until=None, **fields)
            if self.before_commit is not None:
                self.before_commit()

    def write_evals(self, run_id: str, evals: list[dict]) -> None:
        """Upsert evaluation rows (dicts as benchmarks.harness.evaluate.generalization makes them; a
        row without `point` is the single-axis point axis=value)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO evals (run_id, point, axis, value, cost_bits, bit_errors, "
                "n, channels_json, memory_needed, beyond_memory) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        e.get("point") or f"{e['axis']}={e['value']}",
                        e["axis"],
                        e["value"],
                        e["cost_bits"],
                        e["bit_errors"],
                        e["n"],
                        None
                        if e.get("channels") is None
                        else json.dumps(e["channels"], sort_keys=True),
                        e.get("memory_needed"),
                        None if e.get("beyond_memory") is None else int(e["beyond_memory"]),
                    )
                    for e in evals
                ],
            )

    def add_speed(self, rows: list[dict]) -> None:
        """Upsert benchmark rows (keys: the speed table's columns)."""
        if not rows:
            return
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(speed)")]
        with self.transaction() as db:
            for row in rows:
                names = [c for c in columns if c in row]
                db.execute(
                    f"INSERT OR REPLACE INTO speed ({', '.join(names)}) VALUES "
                    f"({', '.join('?' * len(names))})",
                    [row[n] for n in names],
                )

    # -- loaders -------------------------------------------------------------------------------

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY task, model, seed", self.db)

    def curves(self) -> pd.DataFrame:
        """Curve points joined with their run's model, task, seed and profile."""
        return pd.read_sql_query(
            "SELECT r.model, r.task, r.seed, r.profile, c.* FROM curves c JOIN runs r "
            "USING (run_id) ORDER BY r.task, r.model, r.seed, c.split, c.step",
            self.db,
        )

    def evals(self) -> pd.DataFrame:
        """Evaluation points joined with their run's model, task, seed and profile. `value` and
        `memory_needed` are nullable integers and `beyond_memory` a nullable boolean (NA: a
        joint point, a task with no memory bound, a model with no memory)."""
        frame = pd.read_sql_query(
            "SELECT r.model, r.task, r.seed, r.profile, e.* FROM evals e JOIN runs r "
            "USING (run_id) ORDER BY r.task, r.model, r.seed, e.axis, e.value, e.point",
            self.db,
        )
        return frame.astype(
            {"value": "Int64", "memory_needed": "Int64", "beyond_memory": "boolean"}
        )

    def traces(self) -> pd.DataFrame:
        """One row per traced run: model, task, seed, profile, run_id and one column per array
        (numpy arrays: input [T, I], target [T, O], mask [T], output [T, O] probabilities,
        read_weights [T, R, N] and write_weights [T, W, N] for memory models, else None)."""
        frame = pd.read_sql_query(
            "SELECT r.model, r.task, r.seed, r.profile, t.run_id, t.arrays_json FROM traces t "
            "JOIN runs r USING (run_id) ORDER BY r.task, r.model, r.seed",
            self.db,
        )
        arrays = [self.trace_arrays(r, t) for r, t in zip(frame.run_id, frame.pop("arrays_json"))]
        for name in TRACE_ARRAYS:
            frame[name] = [np.asarray(a[name]) if a.get(name) is not None else None for a in arrays]
        return frame

    def speed(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM speed ORDER BY measured_at, name", self.db)

    def trace_arrays(self, run_id: str, text: str) -> dict:
        """A trace's {name: nested lists}; StoreError naming the run when they do not parse."""
        try:
            arrays = json.loads(text)
        except (TypeError, ValueError) as error:
            raise StoreError(
                f"results store {self.path}: trace of run {run_id} is not JSON ({error}): "
                "damaged, or not one of ours"
            ) from None
        if not isinstance(arrays, dict):
            raise StoreError(
                f"results store {self.path}: trace of run {run_id} is not a JSON object: "
                "damaged, or not one of ours"
            )
        return arrays
