"""The speed benchmark (benchmarks/speed_suite/bench.py) end to end at toy sizes: rows in the store
and the JSON file with the speed table's columns, one reference row per (mode, batch, steps), ratios
to it, compile variants, batched seeds, both sweeps, and the memory guard. Real compilation takes
tens of seconds, so torch.compile is replaced by the identity: every model's real compile_step runs,
with its chunking and padding, on eager functions (tests/test_models.py checks those against the
plain loop). On a CPU the memory models run their native kernels, which have nothing to compile.
"""

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import torch

from ntm_bench.benchmarks.harness.batched import SeedStack
from ntm_bench.benchmarks.speed_suite import bench as speed_bench
from ntm_bench.benchmarks.speed_suite import configs, output
from ntm_bench.benchmarks.speed_suite import peak_memory as speed_memory
from ntm_bench.benchmarks.speed_suite import timing as speed_timing
from ntm_bench.benchmarks.process.allocator import tune_malloc
from conftest import BUILTIN_MODELS
from ntm_bench.models import MODELS
from ntm_bench.reports import speed as speed_report
from ntm_bench.tasks.base import Batch

ROOT = Path(__file__).resolve().parent.parent
SEEDS = configs.PROFILES["smoke"].seeds[0]  # the smoke profile's one batched seed count


def patch_compile(patch: pytest.MonkeyPatch) -> None:
    """torch.compile(fn, ...) -> fn."""
    patch.setattr(torch, "compile", lambda fn, **options: fn)


@pytest.fixture
def no_compile(monkeypatch):
    patch_compile(monkeypatch)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One smoke run of every registered model, shared by the tests below (the memory guard off)."""
    folder = tmp_path_factory.mktemp("speed")
    with pytest.MonkeyPatch.context() as patch:
        patch_compile(patch)
        rows = speed_bench.run_bench(
            list(BUILTIN_MODELS),
            "cpu",
            str(folder / "s.sqlite"),
            str(folder / "s.json"),
            profile="smoke",
            progress=False,
            max_mem_mb=float("inf"),
        )
    return rows, folder


def test_rows_reach_the_store_and_the_json_file_with_the_table_columns(bench):
    rows, folder = bench
    db = sqlite3.connect(folder / "s.sqlite")
    columns = [r[1] for r in db.execute("PRAGMA table_info(speed)")]
    stored = db.execute("SELECT COUNT(*), COUNT(DISTINCT bench_id) FROM speed").fetchone()
    assert stored == (len(rows), 1)
    assert all(set(row) == set(columns) for row in rows), set(rows[0]) ^ set(columns)
    assert json.loads((folder / "s.json").read_text()) == rows
    assert len({row["name"] for row in rows}) == len(rows)


def test_every_configuration_has_a_reference_and_a_ratio_against_it(bench):
    rows, _ = bench
    refs = {
        (r["mode"], r["batch"], r["seq_len"]): r for r in rows if r["model"] == configs.REFERENCE
    }
    assert {(r["mode"], r["batch"], r["seq_len"]) for r in rows} == set(refs)
    assert {(m, b) for m in ("forward", "train") for b in (1, 2)} <= {(m, b) for m, b, _ in refs}
    for row in rows:
        assert row["seqs_per_s"] > 0 and row["peak_mem_mb"] >= 0 and row["n_params"] > 0, row[
            "name"
        ]
        extra = json.loads(row["extra_json"])
        if row["model"] == configs.REFERENCE:
            assert row["ratio_to_lstm"] == 1.0 and "vs_reference" not in extra
        else:  # timed in turns with the reference: the median of the per-round ratios
            own, ref = extra["round_iter_s"], extra["reference_round_iter_s"]
            assert len(own) == len(ref) == extra["rounds"] == 1
            seeds = row["seeds"]  # a batched row trains `seeds` batches an iteration
            assert row["ratio_to_lstm"] == extra["vs_reference"] == seeds * ref[0] / own[0]
        assert row["threads"] == 1 and row["device"].startswith("cpu (")
        assert row["seeds"] == (SEEDS if row["name"].endswith(f"/s{SEEDS}") else 1)
        assert (row["memory_size"] is None) == (
            not getattr(MODELS.get(row["model"].removesuffix("+compile")), "has_memory", False)
        )
        assert "peak_mem_method" in extra and extra["allocator"] == tune_malloc()


def compiling(name: str) -> bool:
    """Whether `name`'s compile_step compiles anything on the CPU (the memory models: no, their
    native kernel runs; a model whose forward runs `unroll` over its step: yes)."""
    profile = configs.PROFILES["smoke"]
    model = configs.build(
        name, configs.model_params(name, profile.sizes, None), torch.device("cpu"), 0
    )
    return model.compile_step()


def test_compile_variants_in_train_mode_with_their_warm_up_recorded_apart(bench, no_compile):
    rows, _ = bench
    compiled = [r for r in rows if r["model"].endswith("+compile")]
    assert {r["model"].removesuffix("+compile") for r in compiled} == {
        name for name in BUILTIN_MODELS if compiling(name)
    }
    assert {r["mode"] for r in compiled} <= {"train"}
    assert all(r["name"].startswith(r["model"] + "/") for r in compiled)
    for row in compiled:
        extra = json.loads(row["extra_json"])
        assert extra["compile_s"] >= 0 and extra["first_iter_s"] > 0 and extra["rounds"] >= 1


def test_batched_seeds_rows_for_every_vmap_model_count_every_seeds_sequences(bench):
    rows, _ = bench
    batched = [r for r in rows if r["seeds"] > 1]
    vmap = [name for name in BUILTIN_MODELS if MODELS[name].supports_vmap]
    # compiled too where the model has its own K-seed pass and something to compile (on a CPU the
    # NTM and the DNC have their native kernels: nothing)
    own = [name for name in vmap if MODELS[name].has_seeds_pass and compiling(name)]
    assert vmap and sorted((r["model"], r["mode"], r["batch"]) for r in batched) == sorted(
        [(name, "train", b) for name in vmap for b in (1, 2)]
        + [(f"{name}+compile", "train", b) for name in own for b in (1, 2)]
    )
    alone = {
        (r["model"], r["batch"]): r
        for r in rows
        if r["mode"] == "train"
        and r["seeds"] == 1
        and r["seq_len"] == 5
        and r["memory_size"] in (None, 8)
    }
    for row in batched:
        extra, one = (
            json.loads(row["extra_json"]),
            json.loads(alone[(row["model"], row["batch"])]["extra_json"]),
        )
        assert row["seeds"] == SEEDS and row["name"].endswith(f"/t5/s{SEEDS}"), row["name"]
        assert row["seqs_per_s"] == pytest.approx(SEEDS * row["batch"] / extra["median_iter_s"])
        # through the reference both rows were timed in turns with: own_K / own_1 =
        # (ref / own_1) / ((K ref / own_K) / K)
        assert extra["wall_vs_one_seed"] == pytest.approx(
            one["vs_reference"] / (extra["vs_reference"] / SEEDS)
        )
        assert extra["wall_vs_one_seed"] > 0 and ("compile_s" in extra) == row["model"].endswith(
            "+compile"
        )
    table = output.format_table(rows)
    assert f"ntm/train/b1/n8/t5/s{SEEDS}" in table and "x 1 seed" in table
    _, shown = speed_report.speed_table(pd.DataFrame(rows))
    assert (
        shown.loc[shown.name == f"ntm/train/b2/n8/t5/s{SEEDS}", "wall_vs_one_seed"].item() != "n/a"
    )


def test_sweeps_vary_one_size_of_the_memory_models(bench):
    rows, _ = bench
    ntm = [r for r in rows if r["model"] == "ntm" and r["mode"] == "train" and r["batch"] == 2]
    assert {r["memory_size"] for r in ntm if r["seq_len"] == 5} == {8, 16}
    assert {r["seq_len"] for r in ntm if r["memory_size"] == 8} == {3, 5, 7}
    assert not [r for r in rows if r["model"] == "lstm" and r["seq_len"] != 5]


def test_a_configuration_is_timed_in_turns_with_the_reference(monkeypatch):
    """timing.measure with a reference: the two take turns, round after round (the order of the
    calls shows it), and vs_reference is the median over rounds of the reference's time per
    iteration over the model's: here the rounds' ratios are 2, 3 and 1/2, so 2."""
    calls, clock = [], [0.0]
    costs = {
        "model": iter([1.0, 1.0, 1.0, 1.0, 4.0, 4.0]),
        "reference": iter([2.0, 2.0, 3.0, 3.0, 2.0, 2.0]),
    }

    def ticking(label):
        def step():
            calls.append(label)
            clock[0] += next(costs[label])

        return step

    model = configs.build(
        "lstm", configs.model_params("lstm", configs.SMOKE_SIZES, None), torch.device("cpu"), 0
    )
    data = configs.copy_batch(2, 5, torch.device("cpu"), 0)
    step = ticking("model")
    monkeypatch.setattr(speed_timing, "make_step", lambda *_: speed_timing.Step(step, lambda: []))
    monkeypatch.setattr(speed_timing, "warm_up", lambda *_: 0.0)
    monkeypatch.setattr(speed_timing, "peak_memory", lambda *_: (0.0, {}))
    monkeypatch.setattr(speed_timing.time, "perf_counter", lambda: clock[0])
    stats = speed_timing.measure(
        model, data, "train", torch.device("cpu"), configs.Timing(0, 3, 0.0), ticking("reference")
    )
    assert calls == ["model", "model", "reference", "reference"] * 3
    assert stats["round_iter_s"] == [1.0, 1.0, 4.0] and stats["reference_round_iter_s"] == [
        2.0,
        3.0,
        2.0,
    ]
    assert stats["vs_reference"] == 2.0 and stats["median_iter_s"] == 1.0
    assert stats["seqs_per_s"] == 2 / 1.0


def test_format_table_lists_every_row():
    rows = [
        {
            "bench_id": "b",
            "name": "x/train/b1/t5",
            "model": "x",
            "device": "cpu (2 cores)",
            "threads": 1,
            "torch_version": "t",
            "seqs_per_s": 10.0,
            "ratio_to_lstm": 0.5,
            "peak_mem_mb": 1.0,
            "n_params": 3,
            "extra_json": json.dumps({"rounds": 3, "compile_s": 1.5, "label": "x(a=1)"}),
        },
        {
            "bench_id": "b",
            "name": "y/train/b1/t5",
            "model": "y",
            "device": "cpu (2 cores)",
            "threads": 1,
            "torch_version": "t",
            "seqs_per_s": None,
            "ratio_to_lstm": None,
            "peak_mem_mb": None,
            "n_params": None,
            "extra_json": json.dumps({"skipped": "too big"}),
        },
    ]
    table = output.format_table(rows)
    assert "x/train/b1/t5" in table and "skipped: too big" in table and "x(a=1)" in table


def test_configurations_over_the_memory_budget_are_recorded_as_skipped(no_compile):
    profile = configs.BenchProfile(
        "tiny",
        (1,),
        ("train",),
        configs.PROFILES["smoke"].timing,
        steps=3,
        compile=False,
        sizes=dict(configs.SMOKE_SIZES),
    )
    rows = speed_bench.run_bench(
        ["ntm"], "cpu", None, None, profile, progress=False, max_mem_mb=1e-6
    )
    ref, ntm = rows
    assert ref["seqs_per_s"] > 0 and ntm["seqs_per_s"] is None and ntm["ratio_to_lstm"] is None
    assert "exceeds" in json.loads(ntm["extra_json"])["skipped"]


def test_the_memory_estimate_grows_with_memory_batch_steps_and_seeds():
    def estimate(memory, batch, steps, seeds=1):
        params = configs.model_params("ntm", configs.SMOKE_SIZES, memory)
        return speed_memory.estimate_mb(
            "ntm", params, configs.Config("ntm", False, "train", batch, memory, steps, seeds), {}
        )

    base = estimate(8, 1, 5)
    assert 0 < base < estimate(64, 1, 5) and base < estimate(8, 2, 5) and base < estimate(8, 1, 9)
    assert estimate(8, 1, 5, seeds=8) == pytest.approx(8 * base)


def test_bad_names_and_devices_are_refused():
    with pytest.raises(KeyError, match="known"):
        speed_bench.run_bench(["nope"], "cpu", None, None, "smoke", progress=False)
    with pytest.raises(KeyError, match="known"):
        speed_bench.run_bench(["ntm"], "cpu", None, None, "nope", progress=False)
    with pytest.raises(ValueError):
        speed_bench.run_bench(
            ["ntm"],
            "mps" if not torch.backends.mps.is_available() else "xla",
            None,
            None,
            "smoke",
            progress=False,
        )


def test_copy_batches_have_exactly_the_requested_steps():
    for steps in (3, 4, 41):
        data = configs.copy_batch(2, steps, torch.device("cpu"), 0)
        assert data.inputs.shape == (steps, 2, 9) and data.mask.shape == (steps, 2)
        assert data.mask.sum() == 2 * ((steps - 1) // 2)


def test_malloc_is_tuned_once_on_glibc_and_says_so_elsewhere():
    state = tune_malloc()
    assert state == tune_malloc()
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert state == "glibc tuned"
    else:
        assert state.startswith("default (")


def test_interleaved_rows_time_every_contender_in_turns_with_ratios_between_them(
    tmp_path, no_compile
):
    """benchmarks/speed_suite/interleaved.py at toy sizes: the reference, each model (on a CPU the
    memory models' native kernels, which have no compiled variant), per-round times, and `vs`
    ratios that agree with them."""
    from ntm_bench.benchmarks.speed_suite.interleaved import format_pairs, run_interleaved
    from ntm_bench.benchmarks.speed_suite.configs import SMOKE_SIZES

    rows = run_interleaved(
        ["ntm", "dnc"],
        "cpu",
        str(tmp_path / "s.sqlite"),
        None,
        batches=(2,),
        rounds=3,
        round_s=0.0,
        sizes=SMOKE_SIZES,
        progress=False,
    )
    assert [r["model"] for r in rows] == [configs.REFERENCE, "ntm", "dnc"]
    assert sqlite3.connect(tmp_path / "s.sqlite").execute(
        "SELECT COUNT(*) FROM speed"
    ).fetchone() == (3,)
    times = {r["model"]: json.loads(r["extra_json"])["round_iter_s"] for r in rows}
    for row in rows:
        extra = json.loads(row["extra_json"])
        assert len(extra["round_iter_s"]) == 3 and row["name"].endswith("/t41/interleaved")
        assert row["seqs_per_s"] == pytest.approx(2 / sorted(extra["round_iter_s"])[1])
        for other, ratio in extra["vs"].items():
            assert ratio == pytest.approx(
                sorted(a / b for a, b in zip(times[row["model"]], times[other]))[1]
            )
        assert row["ratio_to_lstm"] == pytest.approx(
            1 / extra["vs"][configs.REFERENCE] if extra["vs"].get(configs.REFERENCE) else 1.0
        )
    assert format_pairs(rows).splitlines() == [
        f"batch 2: dnc takes {json.loads(rows[2]['extra_json'])['vs']['ntm']:.2f} x the time per "
        "step of ntm",
    ]


@pytest.mark.parametrize("model", [n for n in MODELS if MODELS[n].supports_vmap])
def test_the_speed_benchs_batched_step_trains_every_seed_as_it_would_alone(model):
    """One batched-seeds iteration of the speed bench (speed_timing.make_step on a SeedStack of 3
    seeds, float64): every seed's parameters change, seed k's gradient is model k's own gradient on
    the same batch, and its Adam step lands where model k's own does."""
    cpu = torch.device("cpu")
    params = configs.model_params(model, configs.SMOKE_SIZES, None)
    models = [configs.build(model, params, cpu, seed=k).double() for k in range(3)]
    data = Batch(*(t.double() for t in configs.copy_batch(2, 5, cpu, seed=0)))
    stack = SeedStack(models)
    before = {n: p.detach().clone() for n, p in stack.params.items()}
    step, _ = speed_timing.make_step(stack, data, "train")
    step()
    for k, alone in enumerate(models):
        alone_step, _ = speed_timing.make_step(alone, data, "train")
        alone_step()
        assert any(p.grad[k].abs().sum() > 0 for p in stack.params.values())
        for name, p in alone.named_parameters():
            torch.testing.assert_close(
                stack.params[name].grad[k], p.grad, atol=1e-10, rtol=1e-8, msg=name
            )
            torch.testing.assert_close(
                stack.params[name][k].detach(), p.detach(), atol=1e-10, rtol=1e-8, msg=name
            )
            if p.grad.abs().sum() > 0:
                assert not torch.equal(stack.params[name][k], before[name][k]), (k, name)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"threads": 0}, "--threads must be a whole number from 1 to 1024"),
        ({"threads": 5000}, "got 5000"),
        ({"threads": 2**31}, "--threads"),
        ({"max_mem_mb": float("nan")}, "max_mem_mb must be a number above 0"),
        ({"max_mem_mb": 0}, "max_mem_mb"),
        ({"max_mem_mb": -1.0}, "max_mem_mb"),
        ({"seed": -1}, "seed must be a whole number from 0 to"),
        ({"seed": 2**70}, "seed"),
    ],
)
def test_bad_run_options_are_refused_before_measuring(options, message, tmp_path):
    store = tmp_path / "s.sqlite"
    with pytest.raises(ValueError, match=message):
        speed_bench.run_bench(["lstm"], "cpu", str(store), None, "smoke", False, **options)
    assert not store.exists()


@pytest.mark.parametrize(
    "timing,message",
    [
        ({"round_s": float("nan")}, "round_s must be a finite number >= 0"),
        ({"round_s": float("inf")}, "round_s"),
        ({"round_s": -1.0}, "round_s"),
        ({"burn_in": -1}, "burn_in must be a whole number >= 0"),
        ({"rounds": 0}, "rounds must be a whole number >= 1"),
        ({"rounds": 1.5}, "rounds"),
        ({"rounds": True}, "rounds"),
    ],
)
def test_timings_that_would_never_stop_are_refused(timing, message):
    with pytest.raises(ValueError, match=message):
        configs.Timing(**timing)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"batches": (0,)}, "batches >= 1"),
        ({"memory_sizes": (0,)}, "memory sizes must be >= 1"),
        ({"batches": (1.5,)}, "whole numbers"),
        ({"seeds": (1,)}, "batched seed counts must be >= 2"),
        ({"steps": 2}, "at least 3 steps"),
    ],
)
def test_bad_speed_profiles_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        configs.BenchProfile("bad", **{"batches": (1,), "modes": ("train",), **fields})


def test_the_cost_of_a_profile_times_its_runs_in_turns(monkeypatch):
    """benchmarks.speed_suite.cost: every (model, task) built as its run, then timed in turns by
    timing.time_rounds, one row each with the median and range over the rounds."""
    from ntm_bench.benchmarks.harness.config import load_profile
    from ntm_bench.benchmarks.harness.plan import resolve
    from ntm_bench.benchmarks.speed_suite import cost, timing

    profile = load_profile("quick")
    specs = [resolve(profile, m, "copy", 1) for m in ("ntm", "lstm")]
    calls = []

    def spied(steps, device, rounds, round_s):
        calls.append((sorted(steps), rounds, round_s))
        return timing.time_rounds(steps, device, rounds, round_s)

    monkeypatch.setattr(cost, "time_rounds", spied)
    rows = cost.measure(specs, False, 2, 0.01)
    assert calls == [([("lstm", "copy"), ("ntm", "copy")], 2, 0.01)]  # one call: in turns
    assert [(r["model"], r["task"], r["batch"]) for r in rows] == [
        ("ntm", "copy", profile.train.batch_size),
        ("lstm", "copy", profile.train.batch_size),
    ]
    for row in rows:
        low, high = row["seq_per_s_range"]
        assert 0 < low <= row["seq_per_s"] <= high
        assert row["n_params"] > 0 and row["compiled"] is False
