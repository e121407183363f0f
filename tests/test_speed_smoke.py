"""The speed benchmark (benchmarks/speed.py) end to end at toy sizes: rows in the store and the
JSON file with the speed table's columns, one reference row per (mode, batch, steps), ratios
against it, compile variants, both sweeps, and the memory guard. Real compilation takes tens of
seconds, so compile_step is replaced by one that "compiles" to the eager step."""

import json
import sqlite3

import pytest
import torch

from benchmarks import speed
from models import MODELS


def fake_compile_step(self):
    if not hasattr(self, "step"):
        return False
    self.compiled_step = self.step
    return True


def patch_compile(patch: pytest.MonkeyPatch) -> None:
    """Replace compile_step wherever a registered model class defines one."""
    for cls in {klass for model in MODELS.values() for klass in model.__mro__ if "compile_step" in klass.__dict__}:
        patch.setattr(cls, "compile_step", fake_compile_step)


@pytest.fixture
def no_compile(monkeypatch):
    patch_compile(monkeypatch)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One smoke run of every registered model, shared by the tests below (the memory guard off)."""
    folder = tmp_path_factory.mktemp("speed")
    with pytest.MonkeyPatch.context() as patch:
        patch_compile(patch)
        rows = speed.run_bench(list(MODELS), "cpu", str(folder / "s.sqlite"), str(folder / "s.json"), profile="smoke",
                               progress=False, max_mem_mb=float("inf"))
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
    refs = {(r["mode"], r["batch"], r["seq_len"]): r for r in rows if r["model"] == speed.REFERENCE}
    assert {(r["mode"], r["batch"], r["seq_len"]) for r in rows} == set(refs)
    assert {(m, b) for m in ("forward", "train") for b in (1, 2)} <= {(m, b) for m, b, _ in refs}
    for row in rows:
        assert row["seqs_per_s"] > 0 and row["peak_mem_mb"] >= 0 and row["n_params"] > 0, row["name"]
        ref = refs[(row["mode"], row["batch"], row["seq_len"])]
        assert row["ratio_to_lstm"] == pytest.approx(row["seqs_per_s"] / ref["seqs_per_s"])
        assert row["threads"] == 1 and row["seeds"] == 1 and row["device"].startswith("cpu (")
        assert (row["memory_size"] is None) == (not getattr(MODELS.get(row["model"].removesuffix("+compile")),
                                                            "has_memory", False))
        assert "peak_mem_method" in json.loads(row["extra_json"])


def test_compile_variants_in_train_mode_with_their_warm_up_recorded_apart(bench):
    rows, _ = bench
    compiled = [r for r in rows if r["model"].endswith("+compile")]
    assert compiled and {r["mode"] for r in compiled} == {"train"}
    assert all(r["name"].startswith(r["model"] + "/") for r in compiled)
    for row in compiled:
        extra = json.loads(row["extra_json"])
        assert extra["compile_s"] >= 0 and extra["first_iter_s"] > 0 and extra["iters"] >= 1


def test_sweeps_vary_one_size_of_the_memory_models(bench):
    rows, _ = bench
    ntm = [r for r in rows if r["model"] == "ntm" and r["mode"] == "train" and r["batch"] == 2]
    assert {r["memory_size"] for r in ntm if r["seq_len"] == 5} == {8, 16}
    assert {r["seq_len"] for r in ntm if r["memory_size"] == 8} == {3, 5, 7}
    assert not [r for r in rows if r["model"] == "lstm" and r["seq_len"] != 5]


def test_format_table_lists_every_row():
    rows = [{"bench_id": "b", "name": "x/train/b1/t5", "model": "x", "device": "cpu (2 cores)", "threads": 1,
             "torch_version": "t", "seqs_per_s": 10.0, "ratio_to_lstm": 0.5, "peak_mem_mb": 1.0, "n_params": 3,
             "extra_json": json.dumps({"iters": 3, "compile_s": 1.5, "label": "x(a=1)"})},
            {"bench_id": "b", "name": "y/train/b1/t5", "model": "y", "device": "cpu (2 cores)", "threads": 1,
             "torch_version": "t", "seqs_per_s": None, "ratio_to_lstm": None, "peak_mem_mb": None, "n_params": None,
             "extra_json": json.dumps({"skipped": "too big"})}]
    table = speed.format_table(rows)
    assert "x/train/b1/t5" in table and "skipped: too big" in table and "x(a=1)" in table


def test_configurations_over_the_memory_budget_are_recorded_as_skipped(no_compile):
    profile = speed.BenchProfile("tiny", (1,), ("train",), speed.PROFILES["smoke"].timing, steps=3, compile=False,
                                 sizes=dict(speed.SMOKE_SIZES))
    rows = speed.run_bench(["ntm"], "cpu", None, None, profile, progress=False, max_mem_mb=1e-6)
    ref, ntm = rows
    assert ref["seqs_per_s"] > 0 and ntm["seqs_per_s"] is None and ntm["ratio_to_lstm"] is None
    assert "exceeds" in json.loads(ntm["extra_json"])["skipped"]


def test_the_memory_estimate_grows_with_memory_batch_and_steps():
    def estimate(memory, batch, steps):
        params = speed.model_params("ntm", speed.SMOKE_SIZES, memory)
        return speed.estimate_mb("ntm", params, speed.Config("ntm", False, "train", batch, memory, steps), {})

    base = estimate(8, 1, 5)
    assert 0 < base < estimate(64, 1, 5) and base < estimate(8, 2, 5) and base < estimate(8, 1, 9)


def test_bad_names_and_devices_are_refused():
    with pytest.raises(KeyError, match="known"):
        speed.run_bench(["nope"], "cpu", None, None, "smoke", progress=False)
    with pytest.raises(KeyError, match="known"):
        speed.run_bench(["ntm"], "cpu", None, None, "nope", progress=False)
    with pytest.raises(ValueError):
        speed.run_bench(["ntm"], "mps" if not torch.backends.mps.is_available() else "xla", None, None, "smoke",
                        progress=False)


def test_copy_batches_have_exactly_the_requested_steps():
    for steps in (3, 4, 41):
        data = speed.copy_batch(2, steps, torch.device("cpu"), 0)
        assert data.inputs.shape == (steps, 2, 9) and data.mask.shape == (steps, 2)
        assert data.mask.sum() == 2 * ((steps - 1) // 2)
