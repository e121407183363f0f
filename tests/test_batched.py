"""Seeds as a batch dimension: each seed's results equal training it alone (to 1e-5)."""

import pytest

from ntm_bench.benchmarks.harness import runner
from ntm_bench.benchmarks.harness.batched import SeedStack
from conftest import interrupted_at_first_checkpoint
from ntm_bench.benchmarks.harness.config import load_profile
from ntm_bench.benchmarks.harness.plan import group_units, plan_runs

PROFILE = """
seeds: [1, 2, 3]
train: {steps: 10, batch_size: 3, eval_interval: 5, eval_size: 6, log_interval: 2,
  checkpoint_interval: 4, lr: 0.01}
models:
  ntm: {controller_size: 8, memory_size: 6, memory_width: 4, read_heads: 2}
  ntm_ff: {controller_size: 8, memory_size: 6, memory_width: 4}
  lstm: {hidden_size: 8, num_layers: 1}
  dnc: {controller_size: 8, memory_size: 6, memory_width: 4, read_heads: 2}
tasks:
  copy: {width: 3, max_length: 4, eval: {length: [2, 6]}}
"""


def specs_for(tmp_path, model, *overrides):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE)
    return plan_runs(load_profile(str(path), list(overrides)), [model], ["copy"])


def assert_close_results(solo, batched):
    assert [c["step"] for c in solo["curves"]] == [c["step"] for c in batched["curves"]]
    assert [c["split"] for c in solo["curves"]] == [c["split"] for c in batched["curves"]]
    for a, b in zip(solo["curves"], batched["curves"]):
        assert a["cost_bits"] == pytest.approx(b["cost_bits"], abs=1e-5, rel=1e-5)
        assert a["bit_errors"] == pytest.approx(b["bit_errors"], abs=1e-5)
    for a, b in zip(solo["evals"], batched["evals"]):
        assert (a["axis"], a["value"]) == (b["axis"], b["value"])
        assert a["cost_bits"] == pytest.approx(b["cost_bits"], abs=1e-5, rel=1e-5)
    assert solo["converged_step"] == batched["converged_step"]
    assert solo["status"] == batched["status"] == "done"


@pytest.mark.parametrize(
    "model,optimizer", [("ntm", "adam"), ("ntm", "rmsprop"), ("ntm_ff", "adam"), ("dnc", "adam")]
)
def test_batched_seeds_equal_each_seed_alone(model, optimizer, tmp_path):
    specs = specs_for(tmp_path, model, f"train.optimizer={optimizer}")
    units = group_units(specs)
    assert len(units) == 1 and len(units[0]) == 3
    batched = runner.execute_group(units[0], tmp_path / "g")
    for spec, result in zip(specs, batched):
        assert_close_results(runner.execute(spec, tmp_path / "s"), result)


@pytest.mark.parametrize("model", ["ntm", "dnc"])
def test_compile_on_a_cpu_leaves_the_native_kernel_and_equals_each_seed_alone(model, tmp_path):
    """train.compile on a CPU: the K-seed pass runs the native kernel, which has nothing to
    compile (compile_step says False), and gives each seed's results alone."""
    compiled = []
    original = SeedStack.compile_step
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            SeedStack, "compile_step", lambda self: compiled.append(original(self)) or compiled[-1]
        )
        specs = specs_for(tmp_path, model, "train.compile=true")
        batched = runner.execute_group(group_units(specs)[0], tmp_path / "g")
    assert compiled == [False]
    for spec, result in zip(specs, batched):
        assert_close_results(runner.execute(spec, tmp_path / "s"), result)


def test_models_without_vmap_and_batch_seeds_off_run_alone(tmp_path):
    assert all(len(u) == 1 for u in group_units(specs_for(tmp_path, "lstm")))
    assert all(
        len(u) == 1 for u in group_units(specs_for(tmp_path, "ntm", "train.batch_seeds=false"))
    )


def test_batched_group_resumes_from_its_checkpoint(tmp_path):
    specs = specs_for(tmp_path, "ntm")
    whole = runner.execute_group(specs, tmp_path / "a")
    assert interrupted_at_first_checkpoint(lambda: runner.execute_group(specs, tmp_path / "b")) == [
        4
    ]
    resumed = runner.execute_group(specs, tmp_path / "b")
    for a, b in zip(whole, resumed):
        assert [(c["step"], c["cost_bits"]) for c in a["curves"]] == [
            (c["step"], c["cost_bits"]) for c in b["curves"]
        ]
