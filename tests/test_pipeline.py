"""The whole pipeline into a temporary store: plan, train, skip on rerun, determinism, loaders."""

import json
from pathlib import Path

import pytest
import torch

import run_suite
from conftest import interrupted_at_first_checkpoint, tiny_profile
from ntm_bench.benchmarks.harness.config import load_profile
from ntm_bench.benchmarks.harness.published import GRID
from ntm_bench.benchmarks.harness.plan import plan_runs
from ntm_bench.results.store import Store

ROOT = Path(__file__).resolve().parent.parent

# The shared tiny profile with repeat copy added.
REPEAT_COPY = {
    "repeat_copy": {"width": 3, "max_length": 2, "max_repeats": 2, "eval": {"repeats": [3]}}
}


@pytest.fixture
def profile(tmp_path):
    return tiny_profile(tmp_path, tasks=REPEAT_COPY)


def run(profile, store, *extra):
    return run_suite.main(
        ["--profile", profile, "--store", str(store), "--jobs", "1", "--no-report", *extra]
    )


def test_pipeline_trains_stores_and_skips_on_rerun(profile, tmp_path, capsys):
    store_path = tmp_path / "a.sqlite"
    assert run(profile, store_path) == 0
    store = Store(store_path)
    runs = store.runs()
    assert len(runs) == 8 and set(runs.status) == {"done"}
    assert set(runs.model) == {"ntm", "lstm"} and set(runs.task) == {"copy", "repeat_copy"}
    assert (runs.n_params > 0).all() and runs.threads.eq(1).all()
    curves = store.curves()
    val = curves[curves.split == "val"]
    assert sorted(val.step.unique()) == [6, 12]
    assert len(curves[curves.split == "train"]) == 8 * 4
    evals = store.evals()
    assert len(evals) == 4 * 2 + 4 * 1
    left = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert left == sorted(f"{r}.final.pt" for r in runs.run_id), (
        "finished runs keep their weights, no checkpoint"
    )
    # every run records where its floats reproduce and what learning nothing costs
    fingerprint = json.loads(runs.fingerprint_json.iloc[0])
    assert fingerprint["threads"] == 1 and fingerprint["device"] == "cpu" and fingerprint["cpu"]
    trivial = runs.groupby("task").trivial_json.first().map(json.loads)
    assert set(trivial["copy"]) == {"chance"} and set(trivial["repeat_copy"]) == {
        "chance",
        "memoryless",
    }
    out = capsys.readouterr().out
    # the summary says what these runs show; a few seeds at reduced sizes decide no claim, and
    # the output says so in one line instead of a row of reasons per claim
    assert "learned" in out and "trivial" in out
    assert "These runs decide none of the" in out and f"results/published/{GRID}/claims.md" in out
    assert "why:" not in out
    assert run(profile, store_path) == 0
    assert "0 to train" in capsys.readouterr().out
    assert len(Store(store_path).curves()) == len(curves), "a rerun adds no rows"


def test_two_runs_of_the_same_config_give_identical_curves(profile, tmp_path):
    torch.manual_seed(0)
    assert run(profile, tmp_path / "a.sqlite", "--models", "ntm", "--tasks", "copy") == 0
    torch.manual_seed(999)  # the global seed must not matter
    assert run(profile, tmp_path / "b.sqlite", "--models", "ntm", "--tasks", "copy") == 0
    columns = ["run_id", "split", "step", "cost_bits", "bit_errors"]
    a, b = (
        Store(tmp_path / "a.sqlite").curves()[columns],
        Store(tmp_path / "b.sqlite").curves()[columns],
    )
    assert len(a) > 0 and a.equals(b)
    # different seeds do give different curves
    assert (
        a[a.run_id == a.run_id.iloc[0]].cost_bits.tolist()
        != a[a.run_id != a.run_id.iloc[0]].cost_bits.tolist()
    )


def test_resume_from_checkpoint_equals_uninterrupted(profile, tmp_path):
    from ntm_bench.benchmarks.harness import runner

    spec = plan_runs(load_profile(profile), ["ntm"], ["copy"], [1])[0]
    whole = runner.execute(spec, tmp_path / "c1")
    assert interrupted_at_first_checkpoint(lambda: runner.execute(spec, tmp_path / "c2")) == [5]
    resumed = runner.execute(spec, tmp_path / "c2")
    strip = lambda curves: [{k: v for k, v in c.items() if k != "wall_s"} for c in curves]
    assert strip(resumed["curves"]) == strip(whole["curves"])
    assert resumed["evals"] == whole["evals"]


def test_run_id_depends_on_config_not_profile_name(profile, tmp_path):
    base = plan_runs(load_profile(profile), ["ntm"], ["copy"], [1])[0]
    other = plan_runs(load_profile(profile, ["train.lr=0.02"]), ["ntm"], ["copy"], [1])[0]
    assert base.run_id != other.run_id
    copy = tiny_profile(tmp_path, tasks=REPEAT_COPY, name="renamed")
    assert plan_runs(load_profile(copy), ["ntm"], ["copy"], [1])[0].run_id == base.run_id


def test_traces_are_stored_for_every_finished_run(profile, tmp_path):
    assert run(profile, tmp_path / "t.sqlite", "--seeds", "1") == 0
    traces = Store(tmp_path / "t.sqlite").traces()
    assert len(traces) == 4
    for row in traces.itertuples():
        T = row.input.shape[0]
        assert (
            row.target.shape[0] == T
            and row.output.shape == row.target.shape
            and row.mask.shape == (T,)
        )
        if row.model == "ntm":
            assert row.read_weights.shape == (T, 1, 6) and row.write_weights.shape == (T, 1, 6)
        else:
            assert row.read_weights is None


def test_suite_writes_its_report_beside_the_store_and_report_rebuilds_it(profile, tmp_path, capsys):
    store_path = tmp_path / "r.sqlite"
    assert (
        run_suite.main(
            [
                "--profile",
                profile,
                "--store",
                str(store_path),
                "--jobs",
                "1",
                "--seeds",
                "1",
                "--models",
                "ntm",
                "--tasks",
                "copy",
            ]
        )
        == 0
    )
    index = tmp_path / "reports" / "tiny" / "index.html"
    assert index.exists()
    index.unlink()
    assert run_suite.main(["--report", "--profile", profile, "--store", str(store_path)]) == 0
    assert index.exists()
    assert "report:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        run_suite.main(["--report", "--profile", profile, "--store", str(tmp_path / "none.sqlite")])
    assert exit_info.value.code == 2


def test_params_prints_our_counts_beside_the_papers(capsys):
    assert (
        run_suite.main(
            ["--profile", "paper", "--models", "ntm,lstm", "--tasks", "copy", "--params"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "67561" in out and "1352969" in out  # the paper's Table 1 counts
    assert "62736" in out  # our NTM at the paper's copy size
