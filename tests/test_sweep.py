"""The learning-rate sweep (benchmarks/harness/sweep.py): the profile section is checked like every
other key, the planned runs are the profile's with the rate and a fraction of the budget, the
rule picks the lowest mean final validation cost (a diverged seed is an infinite cost, a pending
one decides nothing) and `sweep --check` fails where the profile states another rate."""

import math

import pandas as pd
import pytest
import yaml

import run_suite
from ntm_bench.benchmarks.harness.config import ConfigError, load_profile
from ntm_bench.benchmarks.harness.sweep import disagreements, sweep_specs, sweep_table
from tests.conftest import tiny_profile

SWEEP = {"rates": [0.001, 0.003, 0.01], "seeds": [1, 2], "fraction": 0.5}


def profile_with(tmp_path, sweep, **changes) -> str:
    path = tiny_profile(tmp_path, **changes)
    raw = yaml.safe_load(open(path))
    raw["sweep"] = sweep
    with open(path, "w") as out:
        yaml.safe_dump(raw, out, sort_keys=False)
    return path


@pytest.mark.parametrize(
    "sweep, key",
    [
        ({**SWEEP, "rates": [0.001, 0.01]}, "sweep.rates"),  # two rates
        ({**SWEEP, "rates": [0.001, 0.003, 0.009]}, "sweep.rates"),  # spans 9x
        ({**SWEEP, "rates": [0.001, 0.001, 0.01]}, "sweep.rates"),  # not distinct
        ({**SWEEP, "rates": [-0.001, 0.003, 0.01]}, "sweep.rates"),
        ({**SWEEP, "rates": [0.001, "fast", 0.01]}, "sweep.rates"),
        ({**SWEEP, "rates": [0.001, float("nan"), 0.01]}, "sweep.rates"),
        ({**SWEEP, "seeds": [1]}, "sweep.seeds"),
        ({**SWEEP, "seeds": [1, 1]}, "sweep.seeds"),
        ({**SWEEP, "seeds": [1, -2]}, "sweep.seeds"),
        ({**SWEEP, "fraction": 0}, "sweep.fraction"),
        ({**SWEEP, "fraction": 1.5}, "sweep.fraction"),
        ({**SWEEP, "fraction": "quarter"}, "sweep.fraction"),
        ({**SWEEP, "fractoin": 0.5}, "sweep.fractoin"),
        ([0.001, 0.01, 0.1], "sweep"),
    ],
)
def test_a_bad_sweep_section_is_refused_by_key(tmp_path, sweep, key):
    path = profile_with(tmp_path, sweep)
    with pytest.raises(ConfigError, match=rf"{path}: {key}\b"):
        load_profile(path)


def test_the_sweep_plans_the_profiles_runs_at_each_rate_and_a_fraction_of_the_budget(tmp_path):
    profile = load_profile(profile_with(tmp_path, SWEEP))
    specs = sweep_specs(profile, ["ntm", "lstm"], ["copy"])
    assert [(s.model, s.train.lr, s.seed) for s in specs] == [
        (model, rate, seed)
        for model in ("ntm", "lstm")
        for rate in SWEEP["rates"]
        for seed in (1, 2)
    ]
    assert {s.train.steps for s in specs} == {6}  # half of 12
    assert {s.profile for s in specs} == {"tiny_sweep"}
    assert all(s.eval == {} for s in specs)  # the validation curve alone decides
    assert len({s.run_id for s in specs}) == len(specs)
    # everything else is the profile's run
    base = [s for s in specs if s.model == "ntm"][0]
    assert base.train.batch_size == 4 and base.model_params["memory_size"] == 6


def test_a_profile_without_a_sweep_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no sweep section"):
        sweep_specs(load_profile(tiny_profile(tmp_path)), ["ntm"], ["copy"])


def table_of(tmp_path, outcomes: dict, lr: float = 0.003):
    """The sweep table of the tiny profile's ntm on copy (profile rate `lr`) with `outcomes`
    {(rate, seed): final cost, "diverged" or None for pending}."""
    profile = load_profile(profile_with(tmp_path, SWEEP, train={"lr": lr}))
    specs = sweep_specs(profile, ["ntm"], ["copy"])
    rows = []
    for spec in specs:
        outcome = outcomes[(spec.train.lr, spec.seed)]
        status = {None: "pending", "diverged": "diverged"}.get(outcome, "done")
        cost = outcome if status == "done" else math.nan
        rows.append({"run_id": spec.run_id, "status": status, "final_cost_bits": cost})
    return sweep_table(profile, specs, pd.DataFrame(rows))


def test_the_lowest_mean_final_cost_is_chosen(tmp_path):
    # means: 0.001 -> 5.0, 0.003 -> 3.0, 0.01 -> 3.5 (one seed lower than any of 0.003's)
    table = table_of(
        tmp_path,
        {(0.001, 1): 4.0, (0.001, 2): 6.0, (0.003, 1): 2.5, (0.003, 2): 3.5,
         (0.01, 1): 1.0, (0.01, 2): 6.0},
    )  # fmt: skip
    assert table["mean"].tolist() == [5.0, 3.0, 3.5]
    assert table.chosen.tolist() == [False, True, False]
    assert disagreements(table) == []


def test_a_diverged_seed_rules_its_rate_out_and_a_pending_one_decides_nothing(tmp_path):
    outcomes = {(0.001, 1): 4.0, (0.001, 2): 6.0, (0.003, 1): 2.5, (0.003, 2): 3.5,
                (0.01, 1): 1.0, (0.01, 2): "diverged"}  # fmt: skip
    table = table_of(tmp_path, outcomes)
    assert math.isinf(table["mean"].iloc[2]) and table.chosen.tolist() == [False, True, False]
    table = table_of(tmp_path, {**outcomes, (0.001, 2): None})
    assert table.pending.tolist() == [1, 0, 0] and not table.chosen.any()
    diverged = {key: "diverged" for key in outcomes}
    assert not table_of(tmp_path, diverged).chosen.any()


def test_a_profile_stating_another_rate_disagrees(tmp_path):
    outcomes = {(0.001, 1): 4.0, (0.001, 2): 6.0, (0.003, 1): 2.5, (0.003, 2): 3.5,
                (0.01, 1): 1.0, (0.01, 2): 6.0}  # fmt: skip
    table = table_of(tmp_path, outcomes, lr=0.01)
    assert disagreements(table) == [
        "ntm on copy: the sweep chose lr 0.003, the profile states 0.01"
    ]


def test_the_sweep_command_trains_checks_and_refuses_bad_input(tmp_path, capsys):
    path = profile_with(tmp_path, {**SWEEP, "fraction": 0.25}, train={"lr": 0.003})
    store = str(tmp_path / "sweep.sqlite")
    argv = ["sweep", "--profile", path, "--models", "ntm", "--store", store, "--jobs", "1"]
    code = run_suite.main(argv + ["--check"])
    out = capsys.readouterr()
    table = out.out.splitlines()[-4:]
    assert len([line for line in table if line.endswith("*")]) == 1
    chosen = float([line for line in table if line.endswith("*")][0].split()[2])
    assert code == (0 if chosen == 0.003 else 1)
    # finished runs are not trained again
    assert run_suite.main(argv) == 0
    assert "6 runs planned, 6 already in" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        run_suite.main(argv + ["--update-baseline"])
    assert exit.value.code == 2
    with pytest.raises(SystemExit) as exit:
        run_suite.main(
            ["sweep", "--profile", tiny_profile(tmp_path, name="plain"), "--store", store]
        )
    assert exit.value.code == 2 and "no sweep section" in capsys.readouterr().err


def test_the_published_sweep_table_is_what_the_published_runs_give(tmp_path, monkeypatch, capsys):
    """results/published/replicate_v2_sweep/sweep.txt is `run_suite.py sweep --profile
    replicate_v2 --published` on the published sweep runs (pending pairs included), nothing
    hand-edited."""
    from ntm_bench.benchmarks.harness.published import ROOT

    monkeypatch.chdir(tmp_path)  # the rebuilt store goes under the working directory
    assert run_suite.main(["sweep", "--profile", "replicate_v2", "--published"]) == 0
    assert capsys.readouterr().out == (ROOT / "replicate_v2_sweep" / "sweep.txt").read_text()
