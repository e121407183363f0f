"""Golden runs: the full curves and evaluations of a few tiny fixed-seed runs, pinned bit for bit
in tests/golden/, so a refactor that claims to change nothing is held to it.

Pinned: ntm, ntm_ff, dnc trained as a batched seed group (two seeds as one stacked model) and
each alone (batch_seeds off), lstm alone, on copy and on repeat copy with a joint point and its
channel groups; a compiled chunk of the NTM under the slow marker. A deliberate numeric change
refreshes the pins in a commit of its own that says why:

    NTM_BENCH_GOLDEN=update python -m pytest -q tests/test_golden.py -m "slow or not slow"
"""

import json
import os
from pathlib import Path

import pytest

import run_suite
from results.store import Store

GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("NTM_BENCH_GOLDEN") == "update"

PROFILE = """
seeds: [1, 2]
train: {steps: 10, batch_size: 3, eval_interval: 5, eval_size: 6, log_interval: 2,
  checkpoint_interval: 4,
        lr: 0.01, batch_seeds: BATCHED, compile: COMPILED}
models:
  ntm: {controller_size: 7, memory_size: 6, memory_width: 4}
  ntm_ff: {controller_size: 7, memory_size: 6, memory_width: 4, read_heads: 2, write_heads: 1}
  lstm: {hidden_size: 7, num_layers: 2}
  dnc: {controller_size: 7, memory_size: 6, memory_width: 4, read_heads: 2}
tasks:
  copy: {width: 3, max_length: 3, eval: {length: [2, 5]}}
  repeat_copy: {width: 2, max_length: 2, max_repeats: 2, eval: {repeats: [3],
    joint: [{length: 3, repeats: 3}]}}
"""


def results(tmp_path: Path, models: str, batched: bool, compiled: bool) -> dict:
    """Every curve point and eval row of the tiny profile's runs, keyed by model/task/seed."""
    profile = tmp_path / "golden.yaml"
    profile.write_text(
        PROFILE.replace("BATCHED", str(batched).lower()).replace("COMPILED", str(compiled).lower())
    )
    store_path = tmp_path / "store.sqlite"
    assert (
        run_suite.main(
            [
                "--profile",
                str(profile),
                "--store",
                str(store_path),
                "--jobs",
                "1",
                "--no-report",
                "--models",
                models,
            ]
        )
        == 0
    )
    store = Store(store_path)
    out = {}
    for (model, task, seed), points in store.curves().groupby(["model", "task", "seed"]):
        out[f"{model}/{task}/{seed}"] = {
            "curves": [
                [p.split, int(p.step), int(p.sequences), p.cost_bits, p.bit_errors]
                for p in points.itertuples()
            ]
        }
    for (model, task, seed), rows in store.evals().groupby(["model", "task", "seed"]):
        out[f"{model}/{task}/{seed}"]["evals"] = [
            [
                r.point,
                r.cost_bits,
                r.bit_errors,
                r.channels_json if isinstance(r.channels_json, str) else None,
            ]
            for r in rows.itertuples()
        ]
    store.close()
    return out


def check(name: str, got: dict) -> None:
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(path.read_text())
    # JSON keeps a float's shortest round-trip repr: equality here is bit-for-bit equality.
    assert sorted(got) == sorted(pinned)
    for key in pinned:
        assert got[key] == pinned[key], f"{name}: {key} changed"


@pytest.mark.parametrize("batched", [True, False], ids=["seed-group", "alone"])
def test_golden_runs(batched, tmp_path):
    models = "ntm,ntm_ff,dnc" if batched else "ntm,ntm_ff,dnc,lstm"
    check("seed_group" if batched else "alone", results(tmp_path, models, batched, compiled=False))


@pytest.mark.slow
def test_golden_compiled_chunk(tmp_path):
    check("compiled", results(tmp_path, "ntm", batched=False, compiled=True))
