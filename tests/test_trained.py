"""Trained models are kept: every finished run's final weights rebuild a model whose validation
cost is the stored final one; pruning is explicit and a pruned run says so."""

import pytest

import run_suite
from ntm_bench.benchmarks.harness.evaluate import score, validation_set
from conftest import tiny_profile
from ntm_bench.benchmarks.harness import trained
from ntm_bench.results.store import Store


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    profile = tiny_profile(
        folder,
        {
            "steps": 6,
            "eval_interval": 3,
            "log_interval": 2,
            "checkpoint_interval": 4,
            "batch_seeds": False,
        },
    )
    store = folder / "s.sqlite"
    assert (
        run_suite.main(["--profile", profile, "--store", str(store), "--jobs", "1", "--no-report"])
        == 0
    )
    return folder, store


def test_load_run_gives_the_stored_final_cost(suite):
    folder, store = suite
    runs = Store(store).runs()
    assert len(runs) == 4
    for run in runs.itertuples():
        model, task = trained.load_run(store, run.run_id)
        assert not model.training
        params = (
            Store(store)
            .db.execute("SELECT config_json FROM runs WHERE run_id = ?", (run.run_id,))
            .fetchone()
        )
        import json

        config = json.loads(params[0])
        cost, errors = score(
            model,
            validation_set(run.task, config["task_params"], task, config["train"]["eval_size"]),
        )
        # a single run: bit for bit
        assert (cost, errors) == (
            run.final_cost_bits,
            run.final_bit_errors,
        )


def test_prune_is_explicit_and_a_pruned_run_says_so(suite, capsys):
    folder, store = suite
    run_id = Store(store).runs().run_id.iloc[0]
    assert trained.main(["list", "--store", str(store)]) == 0
    assert "4 runs' weights kept" in capsys.readouterr().out
    assert trained.main(["prune", "--store", str(store), "--run-id", run_id]) == 0
    assert "1 runs' weights pruned" in capsys.readouterr().out
    with pytest.raises(
        trained.WeightsMissing, match=f"run {run_id} \\(done\\) has no kept weights"
    ):
        trained.load_run(store, run_id)
    with pytest.raises(KeyError):
        trained.load_run(store, "nope")
    assert len(trained.kept(folder / "checkpoints")) == 3
