"""A damaged or foreign store is refused on open: a StoreError naming the file and what is
wrong (the missing table or column, the run whose config_json does not parse, the unknown
version), raised before anything is written, so the file keeps its bytes; a store opened
read-only is never written, not even to upgrade it."""

import hashlib
import json
import os
import re
import sqlite3
import subprocess

import pytest

from ntm_bench.results.schema import StoreError

from ntm_bench.results.store import Store

CONFIG = {"format_version": 2, "model": "lstm", "task": "copy", "seed": 1}
CURVE = {"split": "val", "step": 2, "sequences": 4, "cost_bits": 1.5, "bit_errors": 0.5}
EVAL = {"point": "length=4", "axis": "length", "value": 4, "cost_bits": 2.0, "bit_errors": 1.0}


def make_store(path):
    """A small finished store: one run with a curve point, an eval row and a trace."""
    store = Store(path)
    store.register("r1", "lstm", "copy", 1, "tiny", CONFIG)
    store.finish_run(
        "r1",
        [{**CURVE, "wall_s": 0.1}],
        [{**EVAL, "n": 4, "channels": {"content": [1.0, 0.5]}}],
        {"input": [[0.0, 1.0]], "output": [[0.5, 0.5]]},
        status="done",
    )
    store.close()
    return path


def damaged(path, sql):
    """A store made by make_store, then changed by `sql` (and closed: no WAL left to apply)."""
    make_store(path)
    db = sqlite3.connect(path)
    db.executescript(sql)
    db.close()
    assert not path.with_name(path.name + "-wal").exists()
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# (case, SQL that damages a good store, fragment of the one-line message)
DAMAGES = [
    ("no evals table", "DROP TABLE evals", "has no table evals"),
    ("no traces table", "DROP TABLE traces", "has no table traces"),
    (
        "no lease_until column",
        "ALTER TABLE runs DROP COLUMN lease_until",
        "has no column lease_until in table runs",
    ),
    (
        "no channels column",
        "ALTER TABLE evals DROP COLUMN channels_json",
        "has no column channels_json in table evals",
    ),
    (
        "config_json not JSON",
        "UPDATE runs SET config_json = '{not json'",
        "has run r1 whose config_json is not JSON",
    ),
    (
        "config_json a list",
        "UPDATE runs SET config_json = '[1, 2]'",
        "has run r1 whose config_json is a JSON list, not an object",
    ),
    (
        "channels_json not JSON",
        "UPDATE evals SET channels_json = 'x'",
        "has eval r1 length=4 whose channels_json is not JSON",
    ),
    ("version -1", "PRAGMA user_version = -1", "has schema version -1, which no ntm-bench writes"),
    ("version 99", "PRAGMA user_version = 99", "has schema version 99, newer than this code's 3"),
    (
        "version 1 stamped on version 2 tables",
        "PRAGMA user_version = 1",
        "has schema version 1, but its evals table is not version 1's",
    ),
    (
        "version 0 with tables",
        "PRAGMA user_version = 0",
        "is an SQLite file but not an ntm-bench results store",
    ),
]


@pytest.mark.parametrize("readonly", [False, True], ids=["write", "read-only"])
@pytest.mark.parametrize("case,sql,message", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_a_damaged_store_is_refused_unchanged(case, sql, message, readonly, tmp_path):
    path = damaged(tmp_path / "s.sqlite", sql)
    before = digest(path)
    with pytest.raises(StoreError) as error:
        Store(path, readonly=readonly)
    text = str(error.value)
    assert str(path) in text and message in text and "\n" not in text, text
    assert digest(path) == before, "a refused store keeps its bytes"


# (case, what is at the path, fragment of the message; None: opened for writing it is created)
FILES = [
    ("missing file", None, "no results store at"),
    ("folder", "folder", "is a folder, expected a file"),
    ("empty file", b"", "is empty (no tables): run a suite first"),
    ("text file", b"hello\n" * 50, "file is not a database"),
]


def place(path, content):
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("case,content,message", FILES, ids=[f[0] for f in FILES])
def test_read_only_open_of_a_file_that_is_no_store(case, content, message, tmp_path):
    path = place(tmp_path / "s.sqlite", content)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StoreError, match=re.escape(message)):
        Store(path, readonly=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing created"
    if path.is_file():
        assert path.read_bytes() == content, "nothing written"


@pytest.mark.parametrize("case,content,message", FILES[1:2] + FILES[3:], ids=["folder", "text"])
def test_writable_open_of_a_file_that_is_no_store(case, content, message, tmp_path):
    path = place(tmp_path / "s.sqlite", content)
    with pytest.raises(StoreError, match=re.escape(message)):
        Store(path)
    if path.is_file():
        assert path.read_bytes() == content


def test_a_read_only_file_is_refused_for_writing(tmp_path):
    path = make_store(tmp_path / "s.sqlite")
    # root writes a mode-0444 file, so there the file is made immutable instead
    root = os.geteuid() == 0
    if root:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("cannot make a file read-only for root here (chattr +i)")
    else:
        path.chmod(0o444)
    try:
        before = digest(path)
        with pytest.raises(StoreError, match="cannot write results store"):
            Store(path)
        assert Store(path, readonly=True).runs().run_id.tolist() == ["r1"]
        assert digest(path) == before
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_open_reads_without_writing(tmp_path):
    path = make_store(tmp_path / "s.sqlite")
    before = digest(path)
    store = Store(path, readonly=True)
    assert store.runs().run_id.tolist() == ["r1"] and len(store.traces()) == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.register("r2", "lstm", "copy", 2, "tiny", CONFIG)
    store.close()
    assert digest(path) == before


def test_read_only_open_of_a_version_1_store_upgrades_in_memory(tmp_path):
    path = damaged(
        tmp_path / "old.sqlite",
        """
        DROP TABLE evals;
        CREATE TABLE evals (run_id TEXT NOT NULL REFERENCES runs(run_id), axis TEXT NOT NULL,
            value INTEGER NOT NULL, cost_bits REAL, bit_errors REAL, n INTEGER,
            PRIMARY KEY (run_id, axis, value));
        INSERT INTO evals VALUES ('r1', 'length', 20, 3.5, 1.25, 256);
        ALTER TABLE runs DROP COLUMN fingerprint_json;
        ALTER TABLE runs DROP COLUMN trivial_json;
        ALTER TABLE speed DROP COLUMN fingerprint_json;
        PRAGMA user_version = 1;
        """,
    )
    before = digest(path)
    store = Store(path, readonly=True)
    assert store.evals().point.tolist() == ["length=20"]
    store.close()
    assert digest(path) == before
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_version_2_store_upgrades_with_no_fingerprints(tmp_path):
    # version 2 had no fingerprint columns: its runs get one, NULL, and compare within tolerance
    path = damaged(
        tmp_path / "old.sqlite",
        """
        ALTER TABLE runs DROP COLUMN fingerprint_json;
        ALTER TABLE runs DROP COLUMN trivial_json;
        ALTER TABLE speed DROP COLUMN fingerprint_json;
        PRAGMA user_version = 2;
        """,
    )
    store = Store(path)
    assert store.runs().fingerprint_json.isna().all() and len(store.runs()) == 1
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_failed_upgrade_leaves_the_file_as_it_was(tmp_path):
    # version 1 evals, but a runs table without the claim columns: the upgrade runs, the check
    # before its commit finds runs incomplete, and everything is rolled back
    path = damaged(
        tmp_path / "old.sqlite",
        """
        DROP TABLE evals;
        CREATE TABLE evals (run_id TEXT NOT NULL REFERENCES runs(run_id), axis TEXT NOT NULL,
            value INTEGER NOT NULL, cost_bits REAL, bit_errors REAL, n INTEGER,
            PRIMARY KEY (run_id, axis, value));
        ALTER TABLE runs DROP COLUMN owner;
        ALTER TABLE runs DROP COLUMN fingerprint_json;
        ALTER TABLE runs DROP COLUMN trivial_json;
        ALTER TABLE speed DROP COLUMN fingerprint_json;
        PRAGMA user_version = 1;
        """,
    )
    before = digest(path)
    with pytest.raises(StoreError, match="has no column owner in table runs"):
        Store(path)
    assert digest(path) == before


def test_a_trace_that_does_not_parse_names_its_run(tmp_path):
    path = damaged(tmp_path / "s.sqlite", "UPDATE traces SET arrays_json = '[1'")
    store = Store(path, readonly=True)
    with pytest.raises(StoreError, match=f"results store {path}: trace of run r1 is not JSON"):
        store.traces()
    store.close()


def test_nan_in_a_config_is_json_python_reads(tmp_path):
    # SQLite's json_valid rejects NaN, which json.dumps writes: such a config must still open
    path = damaged(tmp_path / "s.sqlite", """UPDATE runs SET config_json = '{"lr": NaN}'""")
    store = Store(path, readonly=True)
    assert json.loads(store.runs().config_json.iloc[0]) != {}
    store.close()


def trained_argv(tmp_path, *argv):
    """`python -m benchmarks.harness.trained` argv with the store and checkpoints made here (r1
    kept)."""
    store = make_store(tmp_path / "s.sqlite")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "r1.final.pt").write_bytes(b"weights")
    (tmp_path / "file").write_text("a file")
    (tmp_path / "text.sqlite").write_text("hello\n" * 50)
    (tmp_path / "empty.sqlite").write_bytes(b"")
    damaged(tmp_path / "damaged.sqlite", "DROP TABLE evals")
    named = {"S": store, "T": tmp_path}
    return [a.format(**named) for a in argv]


# (case, argv with {S} the store and {T} the folder, fragment of the one-line message)
TRAINED = [
    ("text store", ["list", "--store", "{T}/text.sqlite"], "file is not a database"),
    ("store a folder", ["list", "--store", "{T}"], "is a folder, expected a file"),
    ("missing store", ["list", "--store", "{T}/new.sqlite"], "no results store at"),
    ("empty file", ["list", "--store", "{T}/empty.sqlite"], "is empty (no tables)"),
    ("damaged store", ["list", "--store", "{T}/damaged.sqlite"], "has no table evals"),
    (
        "checkpoints a file",
        ["list", "--store", "{S}", "--checkpoints", "{T}/file"],
        "--checkpoints {T}/file is a file, expected a folder",
    ),
    (
        "checkpoints missing",
        ["list", "--store", "{S}", "--checkpoints", "{T}/nope"],
        "--checkpoints {T}/nope: no such folder",
    ),
    (
        "checkpoints empty",
        ["prune", "--store", "{S}", "--checkpoints", "", "--run-id", "r1"],
        "--checkpoints '': give a folder",
    ),
    ("unknown run id", ["prune", "--store", "{S}", "--run-id", "nope"], "--run-id 'nope': no such"),
    (
        "unknown run id, missing checkpoints",
        ["prune", "--store", "{S}", "--checkpoints", "{T}/nope", "--run-id", "nope"],
        "--run-id 'nope': no such run in {S}",
    ),
    (
        "unknown profile",
        ["prune", "--store", "{S}", "--profile", "nope"],
        "--profile 'nope': no runs of it in {S} (it has: tiny)",
    ),
    (
        "run id of another profile",
        ["prune", "--store", "{S}", "--profile", "tiny", "--run-id", "r1", "--run-id", "r2"],
        "--run-id 'r2': no such run",
    ),
]


@pytest.mark.parametrize("case,argv,message", TRAINED, ids=[t[0] for t in TRAINED])
def test_trained_bad_input(case, argv, message, tmp_path, capsys):
    from ntm_bench.benchmarks.harness import trained

    args = trained_argv(tmp_path, *argv)
    files = contents(tmp_path)
    assert trained.main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message.format(S=tmp_path / "s.sqlite", T=tmp_path) in lines[0]
    assert lines[0].startswith("python -m benchmarks.harness.trained: error: ")
    assert contents(tmp_path) == files, "no file written, created or deleted"


def contents(folder) -> dict:
    """{path: bytes} of the files under `folder` but the sidecars SQLite keeps beside a WAL store
    while it is read (the -shm index a reader needs, and an empty -wal): not the store's bytes."""
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    wal = [p for p in files if p.name.endswith("-wal")]
    assert all(files[p] == b"" for p in wal), "a reader writes nothing to the WAL"
    return {p: data for p, data in files.items() if not p.name.endswith(("-wal", "-shm"))}


def test_trained_list_and_prune_only_read_the_store(tmp_path, capsys):
    from ntm_bench.benchmarks.harness import trained

    args = trained_argv(tmp_path, "--store", "{S}")
    before = digest(tmp_path / "s.sqlite")
    assert trained.main(["list", *args]) == 0
    assert "1 runs' weights kept" in capsys.readouterr().out
    assert trained.main(["prune", *args, "--run-id", "r1"]) == 0
    assert not (tmp_path / "checkpoints" / "r1.final.pt").exists()
    assert digest(tmp_path / "s.sqlite") == before


PROFILE = """
seeds: [1]
train: {steps: 4, batch_size: 2, eval_interval: 2, eval_size: 4, log_interval: 2,
  checkpoint_interval: 2}
models:
  lstm: {hidden_size: 6, num_layers: 1}
tasks:
  copy: {width: 3, max_length: 3, eval: {length: [4]}}
"""


def exit_code(call) -> int:
    try:
        return call()
    except SystemExit as exit_info:
        return exit_info.code


@pytest.mark.parametrize("command", ["run", "report"])
@pytest.mark.parametrize("case,sql,message", DAMAGES, ids=[d[0] for d in DAMAGES])
def test_run_suite_refuses_a_damaged_store_unchanged(case, sql, message, command, tmp_path, capsys):
    import run_suite

    (tmp_path / "tiny.yaml").write_text(PROFILE)
    path = damaged(tmp_path / "s.sqlite", sql)
    before = digest(path)
    argv = ["--profile", str(tmp_path / "tiny.yaml"), "--store", str(path)]
    argv = ["report", *argv] if command == "report" else [*argv, "--jobs", "1", "--no-report"]
    assert exit_code(lambda: run_suite.main(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], lines
    assert digest(path) == before


def test_a_report_of_an_empty_file_leaves_it_empty(tmp_path, capsys):
    import run_suite

    (tmp_path / "tiny.yaml").write_text(PROFILE)
    (tmp_path / "s.sqlite").write_bytes(b"")
    argv = [
        "report",
        "--profile",
        str(tmp_path / "tiny.yaml"),
        "--store",
        str(tmp_path / "s.sqlite"),
    ]
    assert run_suite.main(argv) == 2
    assert "is empty (no tables): run a suite first" in capsys.readouterr().err
    assert (tmp_path / "s.sqlite").read_bytes() == b"", "was rewritten as a 45 KB store"
