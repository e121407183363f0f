"""The results store's schema and how a file is opened as a store: its tables, the version
stamped in `PRAGMA user_version`, the upgrades from versions 1 and 2, and the checks a file must
pass before a Store reads or writes it (results/store.py has the reads and writes).

A file opened as a store is checked, not trusted: every table and column of SCHEMA must be there
(a store damaged by hand, `drop table` or `alter table ... drop column`, is refused with the name
of what is missing instead of failing later inside a query, half-way through a suite), and every
JSON column must hold JSON objects (a run whose config_json does not parse is named by run_id).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import NamedTuple

SCHEMA_VERSION = 3
# What the store's converged_step and converged_sequences mean, for the harness that writes them
# and the reports that recompute convergence from the curves: a run has converged at the first
# validation point with fewer bit errors per sequence than this (Collier & Beel 2018; the
# paper's figures reach ~0 bits, so the threshold is strict but reachable).
CONVERGED_BIT_ERRORS = 0.1

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    model TEXT NOT NULL, task TEXT NOT NULL, seed INTEGER NOT NULL, profile TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'diverged', 'failed')),
    n_params INTEGER, device TEXT, threads INTEGER, torch_version TEXT, git_sha TEXT,
    started_at REAL, finished_at REAL, wall_s REAL,
    converged_step INTEGER, converged_sequences INTEGER,
    final_cost_bits REAL, final_bit_errors REAL,
    reference_cost_bits REAL,  -- the task's Bayes-optimal cost on the validation set, if it has one
    error TEXT,
    fingerprint_json TEXT, trivial_json TEXT,
    owner TEXT, lease_until REAL  -- who trains a 'running' run, and until when the claim holds
);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id), split TEXT NOT NULL, step INTEGER NOT NULL,
    sequences INTEGER NOT NULL, cost_bits REAL, bit_errors REAL, wall_s REAL,
    PRIMARY KEY (run_id, split, step)
);
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL REFERENCES runs(run_id), point TEXT NOT NULL, axis TEXT NOT NULL,
    value INTEGER,
    cost_bits REAL, bit_errors REAL, n INTEGER, channels_json TEXT, memory_needed INTEGER,
    beyond_memory INTEGER,
    PRIMARY KEY (run_id, point)
);
CREATE TABLE IF NOT EXISTS traces (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id), arrays_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS speed (
    bench_id TEXT NOT NULL, name TEXT NOT NULL, model TEXT NOT NULL, mode TEXT NOT NULL,
    device TEXT NOT NULL, threads INTEGER, torch_version TEXT, batch INTEGER, memory_size INTEGER,
    seq_len INTEGER, seeds INTEGER, n_params INTEGER, seqs_per_s REAL, peak_mem_mb REAL,
    ratio_to_lstm REAL, measured_at REAL, extra_json TEXT, fingerprint_json TEXT,
    PRIMARY KEY (bench_id, name)
);
"""

# Version 1 keyed evals by (run_id, axis, value) and had no point, channels or memory columns:
# the table is rebuilt in the new shape, each old row a single-axis point.
MIGRATE_1_TO_2 = """
ALTER TABLE evals RENAME TO evals_v1;
CREATE TABLE evals (
    run_id TEXT NOT NULL REFERENCES runs(run_id), point TEXT NOT NULL, axis TEXT NOT NULL,
    value INTEGER,
    cost_bits REAL, bit_errors REAL, n INTEGER, channels_json TEXT, memory_needed INTEGER,
    beyond_memory INTEGER,
    PRIMARY KEY (run_id, point)
);
INSERT INTO evals (run_id, point, axis, value, cost_bits, bit_errors, n)
    SELECT run_id, axis || '=' || value, axis, value, cost_bits, bit_errors, n FROM evals_v1;
DROP TABLE evals_v1;
"""

# fingerprint_json (runs and speed, version 3): the processor and settings that decide a run's
# floats (benchmarks/process/fingerprint.py). Version 2 had none: its runs and speed rows get
# the column, NULL, which comparisons read as "another processor" (within tolerance, not exact).
# trivial_json (runs, version 3): what predictors that learn nothing cost on the run's validation
# set ({"chance": 84.9, ...}, tasks/base.py Task.trivial_costs), against which the claims decide
# whether a model learned the task; NULL for older runs (their claims say it is unknown).
MIGRATE_2_TO_3 = """
ALTER TABLE runs ADD COLUMN fingerprint_json TEXT;
ALTER TABLE runs ADD COLUMN trivial_json TEXT;
ALTER TABLE speed ADD COLUMN fingerprint_json TEXT;
"""


class StoreError(RuntimeError):
    """The store cannot be opened or is not one of ours; the message says which file and why."""


# The script that brings a store of each older version to SCHEMA_VERSION (0: a new, empty file).
UPGRADES = {0: SCHEMA, 1: MIGRATE_1_TO_2 + MIGRATE_2_TO_3, 2: MIGRATE_2_TO_3}
# The table each upgrade rebuilds, with the columns it must have before: a file stamped with an
# old version whose tables are not that version's is refused, not "upgraded" into a mix.
UPGRADED_TABLES = {1: ("evals", ("run_id", "axis", "value", "cost_bits", "bit_errors", "n"))}


class JsonColumn(NamedTuple):
    """A column of JSON objects (NULL allowed), and the SQL expression that names a row of it."""

    table: str
    column: str
    row: str


# Checked on every open. The traces' arrays are checked where they are read (Store.traces):
# they are megabytes, and a bad one spoils one picture, not every loader.
JSON_COLUMNS = (
    JsonColumn("runs", "config_json", "'run ' || run_id"),
    JsonColumn("evals", "channels_json", "'eval ' || run_id || ' ' || point"),
    JsonColumn("speed", "extra_json", "'speed row ' || bench_id || ' ' || name"),
    JsonColumn("runs", "fingerprint_json", "'run ' || run_id"),
    JsonColumn("runs", "trivial_json", "'run ' || run_id"),
    JsonColumn("speed", "fingerprint_json", "'speed row ' || bench_id || ' ' || name"),
)


def table_columns(db: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """{table: its column names} of the database open on `db`."""
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {
        name: tuple(r[0] for r in db.execute("SELECT name FROM pragma_table_info(?)", (name,)))
        for name in names
    }


def expected_columns() -> dict[str, tuple[str, ...]]:
    """{table: column names} that SCHEMA creates: read back from an in-memory database, so the
    check cannot drift from the CREATE statements."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        return table_columns(db)
    finally:
        db.close()


def missing(db: sqlite3.Connection) -> str | None:
    """What the store on `db` lacks of SCHEMA ("has no table evals", "has no column
    lease_until in table runs"), or None when every table and column is there."""
    found = table_columns(db)
    for table, columns in expected_columns().items():
        if table not in found:
            return f"has no table {table}"
        absent = [c for c in columns if c not in found[table]]
        if absent:
            return f"has no column {', '.join(absent)} in table {table}"
    return None


def unreadable_json(db: sqlite3.Connection) -> str | None:
    """The first row of a JSON column that is not a JSON object ("has run 3f2a... whose config_json
    is not JSON (Expecting value: line 1 column 1 (char 0))"), or None when all are readable."""
    for column in JSON_COLUMNS:
        for row, text in candidates(db, column):
            try:
                value = json.loads(text)
            except (TypeError, ValueError) as error:
                return f"has {row} whose {column.column} is not JSON ({error})"
            if not isinstance(value, dict):
                return (
                    f"has {row} whose {column.column} is a JSON {type(value).__name__}, "
                    "not an object"
                )
    return None


def candidates(db: sqlite3.Connection, column: JsonColumn) -> list:
    """(row name, text) of the rows whose JSON SQLite's own parser doubts: it rejects the NaN and
    Infinity Python writes, so those few are parsed again in Python, while the many good rows
    are never copied out. An SQLite without JSON functions hands over every row."""
    select = (
        f"SELECT {column.row}, {column.column} FROM {column.table} "
        f"WHERE {column.column} IS NOT NULL"
    )
    doubtful = (
        f"CASE WHEN json_valid({column.column}) THEN json_type({column.column}) != 'object' "
        "ELSE 1 END"
    )
    try:
        return db.execute(f"{select} AND {doubtful}").fetchall()
    except sqlite3.OperationalError:
        return db.execute(select).fetchall()


def open_connection(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to the store at `path` whose version and schema have been checked: read-only
    (SQLite's mode=ro; an older schema is upgraded in a copy in memory) or read-write (a missing
    file is created with its folder, an older schema upgraded, and the file shown writable).
    Raises StoreError, naming the file and the problem, before anything is written."""
    db = connect(path, readonly)
    try:
        return prepare(db, path, readonly)
    except BaseException:
        db.close()
        raise


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """The bare connection: a folder, or a missing file read-only, is refused by name."""
    if path.is_dir():
        raise StoreError(f"results store {path} is a folder, expected a file")
    if readonly and not path.is_file():
        raise StoreError(f"no results store at {path}")
    try:
        if readonly:
            return read_only(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, timeout=30, isolation_level=None)
    except (sqlite3.Error, OSError) as error:
        raise StoreError(f"cannot open results store {path}: {error}") from None


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the store at `path`. A store in WAL mode is read through a
    -shm file beside it, which SQLite cannot make on a read-only file system (a mounted archive,
    a read-only share): there, a store with no -wal file (closed cleanly, every write in the
    main file) is read as immutable; one with a -wal file would be read without its last
    writes, so it is refused."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA user_version")
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(path.parent, os.W_OK) or not path.parent.exists():
            raise  # not the read-only folder case: the caller names the error
    if Path(f"{path}-wal").exists():
        raise StoreError(
            f"cannot open results store {path}: it is in a folder that cannot be written and "
            "has a -wal file beside it (writes not yet in the main file); copy both somewhere "
            "writable"
        )
    return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=30, isolation_level=None)


def prepare(db: sqlite3.Connection, path: Path, readonly: bool) -> sqlite3.Connection:
    """Check the version and schema of the store on `db`, upgrading an older one; returns the
    connection to read from (a copy in memory for an older store opened read-only)."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        objects = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error as error:
        raise StoreError(f"cannot open results store {path}: {error}") from None
    check_version(path, version, objects, readonly)
    if version < SCHEMA_VERSION:
        if readonly:
            db = in_memory(db, path)
        upgrade(db, path, version)
    else:
        check(db, path)
    if not readonly:
        probe_write(db, path)
        db.execute("PRAGMA journal_mode=WAL")
    return db


def check_version(path: Path, version: int, objects: int, readonly: bool) -> None:
    """StoreError unless `version` is one this code reads or upgrades (0: a new, empty file)."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"results store {path} has schema version {version}, newer than this "
            f"code's {SCHEMA_VERSION}: upgrade ntm-bench or use another --store"
        )
    if version not in UPGRADES and version != SCHEMA_VERSION:
        raise StoreError(
            f"results store {path} has schema version {version}, which no ntm-bench writes: "
            "damaged, or not one of ours"
        )
    if version == 0 and objects:
        raise StoreError(f"{path} is an SQLite file but not an ntm-bench results store")
    if version == 0 and readonly:
        raise StoreError(f"results store {path} is empty (no tables): run a suite first")


def check(db: sqlite3.Connection, path: Path) -> None:
    """StoreError naming the first missing table or column, or the first unreadable JSON."""
    try:
        problem = missing(db) or unreadable_json(db)
    except sqlite3.Error as error:
        raise StoreError(f"cannot read results store {path}: {error}") from None
    if problem:
        raise StoreError(f"results store {path} {problem}: damaged, or not one of ours")


def upgrade(db: sqlite3.Connection, path: Path, version: int) -> None:
    """Bring the store from `version` to SCHEMA_VERSION in one transaction that is checked
    before it commits: a failed upgrade leaves the file as it was."""
    if version in UPGRADED_TABLES:
        table, columns = UPGRADED_TABLES[version]
        found = table_columns(db).get(table)
        if found != columns:
            raise StoreError(
                f"results store {path} has schema version {version}, but its {table} table is not "
                f"version {version}'s (columns: {', '.join(found or ('none',))}): damaged, or not "
                "one of ours"
            )
    try:
        db.executescript(
            f"BEGIN IMMEDIATE; {UPGRADES[version]} PRAGMA user_version = {SCHEMA_VERSION};"
        )
        check(db, path)
        db.execute("COMMIT")
    except (sqlite3.Error, StoreError) as error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(error, StoreError):
            raise
        raise StoreError(
            f"cannot upgrade results store {path} from schema version {version}: {error}"
        ) from None


def in_memory(db: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """A copy in memory of the store on `db` (which is closed), to upgrade without writing."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db.backup(memory)
    except sqlite3.Error as error:
        memory.close()
        raise StoreError(f"cannot read results store {path}: {error}") from None
    db.close()
    return memory


def probe_write(db: sqlite3.Connection, path: Path) -> None:
    """StoreError when the file cannot be written (a read-only file, folder or file system):
    SQLite then opens it read-only without a word, and the first result would fail to store."""
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # touches the header; rolled back
        db.execute("ROLLBACK")
    except sqlite3.Error as error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise StoreError(f"cannot write results store {path}: {error}") from None
