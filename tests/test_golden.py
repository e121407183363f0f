"""Golden runs: the full curves and evaluations of a few tiny fixed-seed runs, pinned in
tests/golden/, so a refactor that claims to change nothing is held to it: bit for bit where the
runs' numeric fingerprint (benchmarks/process/fingerprint.py: processor, vector kernels, BLAS,
torch and numba versions, threads) is the one the pins were made with (tests/golden/
fingerprint.json), within fingerprint.TOLERANCE relative elsewhere (and a bit error mean within
one flipped bit), since floats round differently on another processor.

Pinned: ntm, ntm_ff, dnc trained as a batched seed group (two seeds as one stacked model) and
each alone (batch_seeds off), lstm alone, on copy and on repeat copy with a joint point and its
channel groups. A deliberate numeric change refreshes the pins in a commit that says why:

    NTM_BENCH_GOLDEN=update python -m pytest -q tests/test_golden.py
"""

import json
import os
import sys
from pathlib import Path

import pytest

import run_suite
from ntm_bench.benchmarks.process import fingerprint
from ntm_bench.results.store import Store

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


# a bit error mean's allowance on another processor: one flipped bit in the smallest set scored
# (batch_size 3 and eval_size 6 in PROFILE)
FLIPS = 1 / 3


def results(tmp_path: Path, models: str, batched: bool, compiled: bool) -> dict:
    """Every curve point and eval row of the tiny profile's runs, keyed by model/task/seed, and
    under "fingerprint" the one fingerprint every run recorded."""
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
    fingerprints = set(store.runs().fingerprint_json)
    assert len(fingerprints) == 1, fingerprints
    out = {"fingerprint": json.loads(fingerprints.pop())}
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


def differences(pinned: dict, got: dict, exact: bool) -> list[str]:
    """One line per run, curve point or eval row of `got` that does not reproduce `pinned`:
    bit for bit where `exact` (JSON keeps a float's shortest round-trip repr, so equal floats
    are equal bits), else costs within fingerprint.TOLERANCE and bit errors within FLIPS too."""
    if sorted(got) != sorted(pinned):
        return [f"runs {sorted(got)} instead of {sorted(pinned)}"]
    lines = []

    def same(a, b, flips=0.0) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return fingerprint.agree(a, b, exact, flips)
        return a == b

    for key in pinned:
        old, new = pinned[key], got[key]
        if len(old["curves"]) != len(new["curves"]) or len(old.get("evals", ())) != len(
            new.get("evals", ())
        ):
            lines.append(f"{key}: another number of curve points or eval rows")
            continue
        for a, b in zip(old["curves"], new["curves"]):
            if not (all(map(same, a[:4], b[:4])) and same(a[4], b[4], FLIPS)):
                lines.append(f"{key}: curve point {a} became {b}")
        for a, b in zip(old.get("evals", ()), new.get("evals", ())):
            channels = [json.loads(c) if c else {} for c in (a[3], b[3])]
            if not (
                same(a[0], b[0])
                and same(a[1], b[1])
                and same(a[2], b[2], FLIPS)
                and channels[0].keys() == channels[1].keys()
                and all(
                    same(x, y, FLIPS if name == "bit_errors" else 0.0)
                    for group in channels[0]
                    for name, x, y in zip(
                        channels[0][group],
                        channels[0][group].values(),
                        channels[1][group].values(),
                    )
                )
            ):
                lines.append(f"{key}: eval row {a} became {b}")
    return lines


def check(name: str, got: dict) -> str:
    """Hold `got` to the pins of `name` (or rewrite them under NTM_BENCH_GOLDEN=update); returns
    the mode compared in, "exact" or "tolerance"."""
    path, recorded = GOLDEN / f"{name}.json", GOLDEN / "fingerprint.json"
    here = got.pop("fingerprint")
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        recorded.write_text(json.dumps(here, indent=1, sort_keys=True) + "\n")
    exact = fingerprint.same(json.loads(recorded.read_text()), here)
    mode = "exact" if exact else "tolerance"
    problems = differences(json.loads(path.read_text()), got, exact)
    assert not problems, f"{name} ({mode}: {fingerprint.describe(here)}): " + "; ".join(problems)
    print(f"golden {name}: {mode} ({fingerprint.describe(here)})")
    return mode


@pytest.mark.parametrize("batched", [True, False], ids=["seed-group", "alone"])
def test_golden_runs(batched, tmp_path):
    models = "ntm,ntm_ff,dnc" if batched else "ntm,ntm_ff,dnc,lstm"
    check("seed_group" if batched else "alone", results(tmp_path, models, batched, compiled=False))


def pinned_alone() -> dict:
    return json.loads((GOLDEN / "alone.json").read_text())


def nudged(document: dict, factor: float) -> dict:
    """`document` with the first curve point's cost of its first run multiplied by `factor`."""
    changed = json.loads(json.dumps(document))
    first = changed[sorted(changed)[0]]["curves"][0]
    first[3] *= factor
    return changed


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "tolerance"])
def test_a_one_percent_change_is_caught_in_both_modes(exact):
    pins = pinned_alone()
    assert differences(pins, pins, exact) == []
    assert len(differences(pins, nudged(pins, 1.01), exact)) == 1


def test_rounding_passes_only_the_tolerance_mode():
    pins = pinned_alone()
    rounded = nudged(pins, 1 + 3e-7)  # a few float32 ulps: what another processor's kernels do
    assert len(differences(pins, rounded, exact=True)) == 1
    assert differences(pins, rounded, exact=False) == []


@pytest.mark.parametrize(
    "change,mode",
    [
        ({}, "exact"),
        ({"cpu": "AuthenticAMD AMD EPYC 7B13"}, "tolerance"),
        ({"threads": 2}, "tolerance"),
    ],
    ids=["recorded fingerprint", "another processor", "another thread count"],
)
def test_the_fingerprint_picks_the_mode(change, mode, tmp_path, monkeypatch):
    recorded = json.loads((GOLDEN / "fingerprint.json").read_text())
    (tmp_path / "fingerprint.json").write_text(json.dumps(recorded))
    (tmp_path / "alone.json").write_text((GOLDEN / "alone.json").read_text())
    monkeypatch.setattr(sys.modules[__name__], "GOLDEN", tmp_path)
    got = {**pinned_alone(), "fingerprint": {**recorded, **change}}
    assert check("alone", got) == mode
    # a change within rounding passes only where the fingerprint differs
    got = {**nudged(pinned_alone(), 1 + 3e-7), "fingerprint": {**recorded, **change}}
    if mode == "exact":
        with pytest.raises(AssertionError, match=r"alone \(exact: "):
            check("alone", got)
    else:
        assert check("alone", got) == "tolerance"
