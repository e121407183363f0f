"""Bad published files and bad --store / --dir for `python -m benchmarks.harness.published`: exit
code 2, one line on stderr naming the file and the key, and nothing written: every file is checked
before the import writes, so a store keeps its bytes (no partial import) and no store is created
where there was none; an export only reads its store."""

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest

from ntm_bench.benchmarks.harness import published

REPLICATE = Path(__file__).resolve().parent.parent / "results" / "published" / "replicate"
GOOD = sorted((REPLICATE / "copy" / "lstm").glob("seed*-*.json"))[0]
OTHER = sorted((REPLICATE / "copy" / "ntm").glob("seed*-*.json"))[0]


def good():
    return json.loads(GOOD.read_text())


def changed(change):
    """The good document as JSON text after `change(document)`."""
    document = copy.deepcopy(good())
    change(document)
    return json.dumps(document)


def config_changed(change):
    def apply(document):
        config = json.loads(document["run"]["config_json"])
        change(config)
        document["run"]["config_json"] = json.dumps(config)

    return changed(apply)


def first_curve(change):
    return changed(lambda d: change(d["curves"][0]))


def first_eval(change):
    return changed(lambda d: change(d["evals"][0]))


# (case, the bad file's bytes or text, fragment of the one-line message after the file's name)
BAD_FILES = [
    ("truncated JSON", GOOD.read_text()[:500], "not JSON (Unterminated string"),
    ("not UTF-8", b'{"run": "caf\xe9"}', "not UTF-8 text (byte 12)"),
    ("a list", "[1, 2]", "expected a JSON object, got a list"),
    ("no run", changed(lambda d: d.pop("run")), ": run: missing"),
    ("run null", changed(lambda d: d.update(run=None)), ": run: expected an object, got None"),
    ("no curves", changed(lambda d: d.pop("curves")), ": curves: missing"),
    ("no evals", changed(lambda d: d.pop("evals")), ": evals: missing"),
    ("unknown key", changed(lambda d: d.update(colour=1)), ": colour: unknown key"),
    ("unknown run key", changed(lambda d: d["run"].update(colour="red")), "run.colour: unknown"),
    ("claim bookkeeping", changed(lambda d: d["run"].update(owner="x")), "run.owner: unknown"),
    ("no run_id", changed(lambda d: d["run"].pop("run_id")), "run.run_id: missing"),
    (
        "seed a string",
        changed(lambda d: d["run"].update(seed="abc")),
        "run.seed: expected an integer, got 'abc'",
    ),
    (
        "seed past int64",
        changed(lambda d: d["run"].update(seed=2**70)),
        "run.seed: expected an integer",
    ),
    ("seed a boolean", changed(lambda d: d["run"].update(seed=True)), "run.seed: expected an"),
    (
        "seed not the config's",
        changed(lambda d: d["run"].update(seed=7)),
        "run.seed: 7, but its config_json says 1",
    ),
    (
        "model not the config's",
        changed(lambda d: d["run"].update(model="ntm")),
        "run.model: 'ntm', but its config_json says 'lstm'",
    ),
    (
        "status weird",
        changed(lambda d: d["run"].update(status="weird")),
        "run.status: 'weird', expected done or diverged",
    ),
    ("status pending", changed(lambda d: d["run"].update(status="pending")), "run.status:"),
    (
        "cost a string",
        changed(lambda d: d["run"].update(final_cost_bits="x")),
        "run.final_cost_bits: expected a number or null, got 'x'",
    ),
    (
        "config_json not JSON",
        changed(lambda d: d["run"].update(config_json="{nope")),
        "run.config_json: not JSON",
    ),
    (
        "config_json a list",
        changed(lambda d: d["run"].update(config_json="[]")),
        "run.config_json: expected an object",
    ),
    ("config without model", config_changed(lambda c: c.pop("model")), "config_json.model: miss"),
    (
        "config of format 1",
        config_changed(lambda c: c.update(format_version=1)),
        "run.config_json.format_version: 1, this code's is 2",
    ),
    (
        "config with a bad train key",
        config_changed(lambda c: c["train"].update(stepz=1)),
        "run.config_json: not a run config (run config: train: unknown key 'stepz'",
    ),
    (
        "run_id tampered",
        changed(lambda d: d["run"].update(run_id="0000000000000000")),
        "run.run_id: '0000000000000000' is not the hash of its config_json",
    ),
    (
        "config edited, run_id kept",
        config_changed(lambda c: c["model_params"].update(hidden_size=7)),
        "is not the hash of its config_json",
    ),
    ("curves a dict", changed(lambda d: d.update(curves={"a": 1})), "curves: expected a list"),
    (
        "curve not an object",
        changed(lambda d: d["curves"].insert(0, 5)),
        "curves[0]: expected an object, got 5",
    ),
    ("curve without step", first_curve(lambda c: c.pop("step")), "curves[0].step: missing"),
    (
        "curve step a string",
        first_curve(lambda c: c.update(step="5")),
        "curves[0].step: expected an integer, got '5'",
    ),
    ("curve unknown key", first_curve(lambda c: c.update(x=1)), "curves[0].x: unknown key"),
    (
        "curve twice",
        changed(lambda d: d["curves"].insert(1, d["curves"][0])),
        "curves[1]: a second row for",
    ),
    ("eval without axis", first_eval(lambda e: e.pop("axis")), "evals[0].axis: missing"),
    (
        "eval beyond_memory a string",
        first_eval(lambda e: e.update(beyond_memory="yes")),
        "evals[0].beyond_memory: expected true or false or null",
    ),
    (
        "eval channels a list",
        first_eval(lambda e: e.update(channels=[1])),
        "evals[0].channels: expected an object or null",
    ),
    (
        "eval twice",
        changed(lambda d: d["evals"].append(d["evals"][0])),
        "a second row for 'length=",
    ),
    ("trace a list", changed(lambda d: d.update(trace=[1])), "trace: expected an object"),
    (
        "trace unknown array",
        changed(lambda d: d.update(trace={"colour": [1]})),
        "trace.colour: unknown key",
    ),
    (
        "trace ragged",
        changed(lambda d: d.update(trace={"input": [[1, 2], [3]]})),
        "trace.input: expected a rectangular array of numbers",
    ),
    # numbers no finished run can have (json.dumps writes NaN and Infinity, and json reads them)
    (
        "curve cost NaN",
        first_curve(lambda c: c.update(cost_bits=float("nan"))),
        "curves[0].cost_bits: nan, expected a finite number >= 0",
    ),
    (
        "curve cost infinite",
        first_curve(lambda c: c.update(cost_bits=float("inf"))),
        "curves[0].cost_bits: inf, expected a finite number >= 0",
    ),
    (
        "curve cost negative",
        first_curve(lambda c: c.update(cost_bits=-0.5)),
        "curves[0].cost_bits: -0.5, expected a finite number >= 0",
    ),
    (
        "curve bit errors -inf",
        first_curve(lambda c: c.update(bit_errors=float("-inf"))),
        "curves[0].bit_errors: -inf, expected a finite number",
    ),
    (
        "curve step 0",
        first_curve(lambda c: c.update(step=0)),
        "curves[0].step: 0, expected at least 1",
    ),
    (
        "curve bit errors above the scored bits",
        # copy at lengths up to 20 of 8 bits: at most 160 scored bits a sequence
        first_curve(lambda c: c.update(bit_errors=160.5)),
        "curves[0].bit_errors: 160.5, more than the 160 bits a training sequence has scored",
    ),
    (
        "eval cost NaN",
        first_eval(lambda e: e.update(cost_bits=float("nan"))),
        "evals[0].cost_bits: nan, expected a finite number >= 0",
    ),
    (
        "eval n 0",
        first_eval(lambda e: e.update(n=0)),
        "evals[0].n: 0, expected at least 1",
    ),
    (
        "eval bit errors above the scored bits",
        # the first evaluation is length 10: 80 scored bits
        first_eval(lambda e: e.update(bit_errors=81.0)),
        "evals[0].bit_errors: 81.0, more than the 80 bits a sequence at length=10 has scored",
    ),
    (
        "eval point not a size",
        first_eval(lambda e: e.update(point="length=abc")),
        "evals[0].point 'length=abc': expected AXIS=N with whole numbers",
    ),
    (
        "eval point on an axis the task lacks",
        first_eval(lambda e: e.update(point="colour=3")),
        "evals[0].point: 'colour=3': Copy has no axis 'colour'",
    ),
    (
        "final cost infinite",
        changed(lambda d: d["run"].update(final_cost_bits=float("inf"))),
        "run.final_cost_bits: inf, expected a finite number >= 0",
    ),
    (
        "fingerprint not JSON",
        changed(lambda d: d["run"].update(fingerprint_json="{cpu")),
        "run.fingerprint_json: not JSON",
    ),
    (
        "fingerprint a list",
        changed(lambda d: d["run"].update(fingerprint_json="[1]")),
        "run.fingerprint_json: expected a JSON object",
    ),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store that already holds one published run (another than the one the cases import)."""
    folder = tmp_path_factory.mktemp("store")
    (folder / "pub").mkdir()
    (folder / "pub" / OTHER.name).write_text(OTHER.read_text())
    path = folder / "s.sqlite"
    assert import_(path, folder / "pub") == 0
    return path


def import_(store_path, folder):
    return published.main(
        ["import", "--store", str(store_path), "--profile", "x", "--dir", str(folder)]
    )


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("python -m benchmarks.harness.published: error: ")
    return lines[0]


@pytest.mark.parametrize("case,content,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_imports_nothing(case, content, message, store, tmp_path, capsys):
    # a good file first in path order: a partial import would leave it in the store
    (tmp_path / "pub" / "a").mkdir(parents=True)
    (tmp_path / "pub" / "a" / GOOD.name).write_text(GOOD.read_text())
    bad = tmp_path / "pub" / "b" / "seed1-bad.json"
    bad.parent.mkdir()
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = digest(store)
    assert import_(store, tmp_path / "pub") == 2
    line = one_line(capsys)
    assert f"{bad}: " in line and message in line, line
    assert digest(store) == before, "nothing imported"
    fresh = tmp_path / "new.sqlite"
    assert import_(fresh, tmp_path / "pub") == 2
    assert message in one_line(capsys)
    assert not fresh.exists(), "no store created"


def test_a_run_published_twice_is_named(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / "pub" / name).mkdir(parents=True)
        (tmp_path / "pub" / name / GOOD.name).write_text(GOOD.read_text())
    assert import_(tmp_path / "s.sqlite", tmp_path / "pub") == 2
    line = one_line(capsys)
    assert f"pub/b/{GOOD.name}: run.run_id: " in line and f"pub/a/{GOOD.name} too" in line
    assert not (tmp_path / "s.sqlite").exists()


def test_every_published_replicate_file_passes():
    assert len(published.read(REPLICATE)) >= 68


def folder_with_good_file(tmp_path):
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / GOOD.name).write_text(GOOD.read_text())
    return tmp_path / "pub"


def text_file(tmp_path):
    path = tmp_path / "t.sqlite"
    path.write_text("hello\n" * 50)
    return path


# (case, argv builder(tmp_path, store) -> argv, fragment of the one-line message)
BAD_COMMANDS = [
    (
        "import into a folder",
        lambda t, s: ["import", "--store", str(t), "--dir", str(folder_with_good_file(t))],
        "is a folder, expected a file",
    ),
    (
        "import into a text file",
        lambda t, s: [
            "import",
            "--store",
            str(text_file(t)),
            "--dir",
            str(folder_with_good_file(t)),
        ],
        "file is not a database",
    ),
    (
        "import from a folder without runs",
        lambda t, s: ["import", "--store", str(t / "new.sqlite"), "--dir", str(t)],
        "no published runs (seed*-*.json) under",
    ),
    (
        "import from a missing folder",
        lambda t, s: ["import", "--store", str(t / "new.sqlite"), "--dir", str(t / "nope")],
        "no published folder",
    ),
    (
        "export from a missing store",
        lambda t, s: ["export", "--store", str(t / "new.sqlite"), "--dir", str(t / "out")],
        "no results store at",
    ),
    (
        "export from a text file",
        lambda t, s: ["export", "--store", str(text_file(t)), "--dir", str(t / "out")],
        "file is not a database",
    ),
    (
        "export from a folder",
        lambda t, s: ["export", "--store", str(t), "--dir", str(t / "out")],
        "is a folder, expected a file",
    ),
    (
        "export from an empty file",
        lambda t, s: ["export", "--store", str(t / "e.sqlite"), "--dir", str(t / "out")],
        "is empty (no tables)",
    ),
    (
        "export of a profile without runs",
        lambda t, s: ["export", "--store", str(s), "--dir", str(t / "out")],
        "has no finished runs of profile 'x' (finished runs of: replicate)",
    ),
    (
        "export into a file",
        lambda t, s: ["export", "--store", str(s), "--dir", str(text_file(t))],
        "is a file, expected a folder",
    ),
    (
        "export under a file",
        lambda t, s: ["export", "--store", str(s), "--dir", str(text_file(t) / "out")],
        "is a file, so nothing can be made under it",
    ),
]


@pytest.mark.parametrize("case,argv,message", BAD_COMMANDS, ids=[c[0] for c in BAD_COMMANDS])
def test_bad_store_or_folder(case, argv, message, store, tmp_path, capsys):
    (tmp_path / "e.sqlite").write_bytes(b"")
    args = [*argv(tmp_path, store), "--profile", "x"]
    before, listing = digest(store), set(tmp_path.rglob("*"))
    assert published.main(args) == 2
    assert message in one_line(capsys)
    assert digest(store) == before
    assert set(tmp_path.rglob("*")) == listing, "nothing created (no store, no --dir)"
    assert (tmp_path / "e.sqlite").read_bytes() == b"", "an empty file is not made a store"


def test_export_only_reads_its_store(store, tmp_path, capsys):
    before = digest(store)
    argv = ["export", "--store", str(store), "--profile", "replicate", "--dir", str(tmp_path)]
    assert published.main(argv) == 0
    assert digest(store) == before
    assert [p.name for p in tmp_path.rglob("seed*.json")] == [OTHER.name]
    assert (tmp_path / "copy" / "ntm" / OTHER.name).read_text() == OTHER.read_text()


def test_a_report_from_a_bad_published_file_is_one_line(tmp_path, monkeypatch, capsys):
    import run_suite
    from ntm_bench.reports import build

    (tmp_path / "zz" / "copy").mkdir(parents=True)
    (tmp_path / "zz" / "copy" / GOOD.name).write_text(GOOD.read_text()[:300])
    (tmp_path / "zz.yaml").write_text("seeds: [1]\n")
    monkeypatch.setattr(published, "ROOT", tmp_path)
    monkeypatch.setattr(build, "OUT_ROOT", tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(["report", "--published", "--profile", str(tmp_path / "zz.yaml")])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{tmp_path / 'zz' / 'copy' / GOOD.name}: not JSON" in lines[0]
    assert not (tmp_path / "out").exists(), "the rebuilt store is not touched"


def test_every_published_run_is_one_the_replicate_profile_plans():
    """The profile, resolved by today's code, gives the published runs' run_ids: a parameter a
    model gained later (models.base `later_params`, the NTM's controller_layers) stays out of the
    config at its default, and enters it, a new run, where a profile sets another value."""
    from ntm_bench.benchmarks.harness.config import load_profile
    from ntm_bench.benchmarks.harness.plan import plan_runs, resolve

    profile = load_profile("replicate")
    planned = {s.run_id for s in plan_runs(profile, list(profile.models), list(profile.tasks))}
    published = {
        json.loads(path.read_text())["run"]["run_id"] for path in REPLICATE.rglob("seed*-*.json")
    }
    assert len(published) == 120 and published <= planned
    assert "controller_layers" not in resolve(profile, "ntm", "priority_sort", 1).model_params
    two = load_profile("replicate", ["models.ntm.per_task.priority_sort.controller_layers=2"])
    assert resolve(two, "ntm", "priority_sort", 1).model_params["controller_layers"] == 2


def grid_of_commits(tmp_path, shas: tuple) -> Path:
    """A folder of the profile 'onegrid' holding two published runs that name `shas`."""
    for source, sha in zip((GOOD, OTHER), shas):
        document = json.loads(source.read_text())
        document["run"].update(profile="onegrid", git_sha=sha)
        path = tmp_path / "onegrid" / "copy" / document["run"]["model"] / source.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))
    return tmp_path / "onegrid"


@pytest.mark.parametrize(
    "shas,message",
    [
        (("abc", "abc"), None),
        (("abc", "def"), "names commit def, 1 others abc"),
        (("abc+dirty", "abc+dirty"), "ran code that differed from commit abc+dirty"),
        ((None, None), "and the others name no commit"),
        (("abc", None), "names commit None, 1 others abc"),
    ],
    ids=["one commit", "two commits", "changed code", "no commit", "one without"],
)
def test_a_one_commit_grid_is_refused_from_more_than_one_commit(
    shas, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(published, "ONE_COMMIT", ("onegrid",))
    folder = grid_of_commits(tmp_path, shas)
    store = tmp_path / "rebuilt.sqlite"
    if message is None:
        published.rebuild("onegrid", store, folder)
        assert len(published.read(folder)) == 2
    else:
        with pytest.raises(published.PublishedError, match=re.escape(message)):
            published.rebuild("onegrid", store, folder)
        assert not store.exists(), "refused before the store is made"
    # export: from a store that holds the runs, into a folder already holding one of them
    assert import_(tmp_path / "all.sqlite", folder) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    (out / "copy" / "lstm").mkdir(parents=True)
    kept = out / "copy" / "lstm" / GOOD.name
    kept.write_text((folder / "copy" / "lstm" / GOOD.name).read_text())
    argv = ["export", "--store", str(tmp_path / "all.sqlite"), "--profile", "onegrid"]
    assert published.main([*argv, "--dir", str(out)]) == (0 if message is None else 2)
    if message is not None:
        assert "onegrid is published from one commit" in one_line(capsys)
        assert [p.name for p in out.rglob("seed*.json")] == [GOOD.name], "nothing written"
    # a profile not in ONE_COMMIT publishes whatever its runs name
    monkeypatch.setattr(published, "ONE_COMMIT", ())
    published.rebuild("onegrid", store, folder)
