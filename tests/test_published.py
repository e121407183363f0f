"""Published results: a store's finished runs written as text and read back give the same
numbers, an import skips runs the store already has, and the files diff line by line."""

import json

import pandas as pd
import pytest

import run_suite
from ntm_bench.benchmarks.harness import published
from ntm_bench.results.store import Store

PROFILE = """
seeds: [1, 2]
train: {steps: 6, batch_size: 2, eval_interval: 3, eval_size: 4, log_interval: 2,
  checkpoint_interval: 3}
models:
  ntm: {controller_size: 6, memory_size: 6, memory_width: 4}
  lstm: {hidden_size: 6, num_layers: 1}
tasks:
  repeat_copy: {width: 3, max_length: 2, max_repeats: 2, eval: {length: [2, 8],
    joint: [{length: 3, repeats: 3}]}}
  copy: {width: 3, max_length: 2, eval: {length: [2, 4]}}   # no channels: NULL beside repeat copy's
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published")
    (folder / "tiny.yaml").write_text(PROFILE)
    store = folder / "store.sqlite"
    code = run_suite.main(
        [
            "--profile",
            str(folder / "tiny.yaml"),
            "--store",
            str(store),
            "--jobs",
            "1",
            "--no-report",
        ]
    )
    assert code == 0
    return folder, store


def frames(path):
    store = Store(path)
    try:
        runs = (
            store.runs()
            .drop(columns=["owner", "lease_until"])
            .sort_values("run_id")
            .reset_index(drop=True)
        )
        curves = store.curves().sort_values(["run_id", "split", "step"]).reset_index(drop=True)
        evals = store.evals().sort_values(["run_id", "point"]).reset_index(drop=True)
        traces = store.traces().sort_values("run_id").reset_index(drop=True)
        return runs, curves, evals, traces
    finally:
        store.close()


def test_export_then_import_gives_the_same_numbers(trained, tmp_path):
    folder, store_path = trained
    store = Store(store_path)
    files = published.export(store, "tiny", tmp_path / "pub")
    store.close()
    assert len(files) == 8 and all(f.suffix == ".json" for f in files)
    copy = Store(tmp_path / "copy.sqlite")
    assert published.add(copy, published.read(tmp_path / "pub")) == 8
    # a second add finds every run there already: nothing re-added
    assert published.add(copy, published.read(tmp_path / "pub")) == 0
    copy.close()
    original, rebuilt = frames(store_path), frames(tmp_path / "copy.sqlite")
    pd.testing.assert_frame_equal(original[0], rebuilt[0])  # runs: every column, exactly
    pd.testing.assert_frame_equal(original[1], rebuilt[1])  # curves
    # evals, joint point and channels included
    pd.testing.assert_frame_equal(original[2], rebuilt[2])
    # One trace per (model, task): the lowest seed's, rounded for pictures.
    assert sorted(rebuilt[3].seed) == [1, 1, 1, 1]
    assert set(zip(rebuilt[3].model, rebuilt[3].task)) == {
        (m, t) for m in ("ntm", "lstm") for t in ("copy", "repeat_copy")
    }


def test_files_have_one_curve_point_per_line(trained, tmp_path):
    folder, store_path = trained
    store = Store(store_path)
    path = next(
        p for p in published.export(store, "tiny", tmp_path / "pub") if "repeat_copy" in p.parts
    )
    store.close()
    text = path.read_text()
    document = json.loads(text)
    # Keys are sorted: a curve point's line starts with bit_errors, an eval row's with axis.
    point_lines = [
        line for line in text.splitlines() if line.strip().startswith(('{"bit_errors"', '{"axis"'))
    ]
    assert len(point_lines) == len(document["curves"]) + len(document["evals"])
    assert path.parent.name == document["run"]["model"] and path.parent.parent.name == "repeat_copy"


def test_rerun_after_import_trains_nothing(trained, tmp_path, capsys):
    folder, store_path = trained
    store = Store(store_path)
    published.export(store, "tiny", tmp_path / "pub")
    store.close()
    fresh = tmp_path / "fresh.sqlite"
    assert (
        published.main(
            ["import", "--store", str(fresh), "--profile", "tiny", "--dir", str(tmp_path / "pub")]
        )
        == 0
    )
    run_suite.main(
        [
            "--profile",
            str(folder / "tiny.yaml"),
            "--store",
            str(fresh),
            "--jobs",
            "1",
            "--no-report",
        ]
    )
    assert "8 already in" in capsys.readouterr().out


def test_import_of_a_missing_folder_is_an_error(tmp_path, capsys):
    assert (
        published.main(
            [
                "import",
                "--store",
                str(tmp_path / "s.sqlite"),
                "--profile",
                "x",
                "--dir",
                str(tmp_path / "nothing"),
            ]
        )
        == 2
    )
    assert "no published folder" in capsys.readouterr().err


def test_a_changed_verdict_is_reported(tmp_path):
    from ntm_bench.reports.verdicts import changed_verdicts

    committed = tmp_path / "claims.csv"
    pd.DataFrame({"id": ["a", "b"], "verdict": ["holds", "inconclusive"]}).to_csv(
        committed, index=False
    )
    same = pd.DataFrame({"id": ["a", "b"], "verdict": ["holds", "inconclusive"]})
    assert changed_verdicts(same, committed) == []
    flipped = pd.DataFrame({"id": ["a", "c"], "verdict": ["fails", "holds"]})
    assert changed_verdicts(flipped, committed) == [
        "a: holds -> fails",
        "b: inconclusive -> absent",
        "c: absent -> holds",
    ]
    assert "no committed claims table" in changed_verdicts(same, tmp_path / "none.csv")[0]


def test_the_traced_run_stays_when_more_runs_of_its_seed_land():
    # a sweep trains one run per rate: seed 1 of (copy, ntm) twice, the first finished keeps
    # the trace; a later seed-1 run with a smaller run_id does not take it
    runs = pd.DataFrame(
        [
            ("copy", "ntm", 2, 5.0, "a2"),
            ("copy", "ntm", 1, 9.0, "c1"),
            ("copy", "ntm", 1, 7.0, "d1"),
            ("copy", "lstm", 3, 1.0, "e3"),
        ],
        columns=["task", "model", "seed", "finished_at", "run_id"],
    )
    assert published.traced_runs(runs) == {"d1", "e3"}
    later = pd.DataFrame([("copy", "ntm", 1, 12.0, "b1")], columns=runs.columns)
    assert published.traced_runs(pd.concat([runs, later])) == {"d1", "e3"}
