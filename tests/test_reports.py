"""reports/: a small store written through the Store API (no training), the whole report built
from it, every link checked, the tables against hand-computed numbers, and the error cases."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from ntm_bench.reports import tables
from ntm_bench.reports.build import build_report
from ntm_bench.reports.data import ReportError
from ntm_bench.reports.reference import load_reference, setting_matches
from ntm_bench.results.store import Store

MODELS, TASKS, SEEDS = ("ntm", "lstm"), ("copy", "ngrams"), (1, 2, 3)
# Final validation costs chosen so the statistics are easy by hand (ntm/copy seed 3 diverges).
FINAL = {
    ("copy", "ntm"): [0.5, 0.7, None],
    ("copy", "lstm"): [10.0, 12.0, 17.0],
    ("ngrams", "ntm"): [134.0, 135.0, 136.0],
    ("ngrams", "lstm"): [137.0, 137.0, 139.0],
}
CONVERGED = {("copy", "ntm"): [100, 200, None], ("copy", "lstm"): [100, None, 300]}
T_975_2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (from a table)


def config(task, model, seed):
    return {
        "model": model,
        "model_params": {"memory_size": 8} if model == "ntm" else {"hidden_size": 4},
        "task": task,
        "task_params": {"min_length": 1, "max_length": 5}
        if task == "copy"
        else {"order": 5, "min_length": 200, "max_length": 200, "score_first": True},
        "seed": seed,
    }


def trace(model, rng, steps=11, locations=8):
    arrays = {
        "input": rng.integers(0, 2, (steps, 6)).tolist(),
        "target": rng.integers(0, 2, (steps, 5)).tolist(),
        "mask": [0] * 6 + [1] * 5,
        "output": rng.random((steps, 5)).tolist(),
        "read_weights": None,
        "write_weights": None,
    }
    if model == "ntm":
        weights = np.eye(locations)[np.arange(steps) % locations]
        arrays["read_weights"] = weights[:, None, :].tolist()
        arrays["write_weights"] = weights[:, None, :].tolist()
    return arrays


def write_run(store, task, model, seed, *, evals=True, traces=True, rng=None):
    run_id = f"{task}-{model}-{seed}"
    store.register(run_id, model, task, seed, "tiny", config(task, model, seed))
    final = FINAL[(task, model)][seed - 1]
    diverged = final is None
    steps = range(10, 40 if diverged else 60, 10)
    start = 140.0 if task == "ngrams" else 40.0
    end = final if final is not None else 5.0
    curves = [
        {
            "split": split,
            "step": s,
            "sequences": s * 16,
            "wall_s": s / 10.0,
            "cost_bits": end + (start - end) * math.exp(-s / 15) + (0.3 if split == "train" else 0),
            "bit_errors": max(0.0, (end - 0.5) / 2) * (1 + math.exp(-s / 15)),
        }
        for s in steps
        for split in ("train", "val")
    ]
    rows = (
        []
        if diverged or not evals
        else [
            {
                "axis": "length",
                "value": v,
                "cost_bits": (final + 1) * v / 5,
                "bit_errors": final * v / 10,
                "n": 8,
            }
            for v in (5, 10, 20)
        ]
    )
    converged = (CONVERGED.get((task, model)) or [None] * 3)[seed - 1]
    fields = (
        {"status": "diverged", "error": "loss is NaN at step 31"}
        if diverged
        else {
            "status": "done",
            "final_cost_bits": final,
            "final_bit_errors": max(0.0, (final - 0.5) / 2),
            "converged_step": converged,
            "converged_sequences": None if converged is None else converged * 16,
        }
    )
    store.finish_run(
        run_id,
        curves,
        rows,
        trace(model, rng) if traces and not diverged else None,
        n_params=1234 if model == "ntm" else 567,
        device="cpu (test)",
        threads=1,
        torch_version="2.x",
        git_sha="abc123",
        started_at=1.7e9,
        wall_s=12.0,
        reference_cost_bits=133.2 if task == "ngrams" else None,
        **fields,
    )


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    store = Store(path)
    rng = np.random.default_rng(0)
    for task in TASKS:
        for model in MODELS:
            for seed in SEEDS:
                write_run(
                    store, task, model, seed, evals=task == "copy", traces=task == "copy", rng=rng
                )
    store.add_speed(
        [
            {
                "bench_id": "b1",
                "name": f"{m}-b{b}",
                "model": m,
                "mode": "train",
                "device": "cpu",
                "threads": 1,
                "batch": b,
                "memory_size": 128,
                "seq_len": 20,
                "seeds": 1,
                "n_params": 10,
                "seqs_per_s": s * b**0.5,
                "peak_mem_mb": 50.0,
                "ratio_to_lstm": s / 100,
                "measured_at": 1.0,
            }
            for m, s in (("ntm", 20.0), ("lstm", 100.0))
            for b in (1, 4, 16)
        ]
    )
    store.close()
    return path


@pytest.fixture(scope="module")
def report(full_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(full_store, out_dir=out)


def test_report_builds_with_every_section(report):
    text = report.read_text()
    assert report.name == "index.html"
    for needle in (
        "Learning curves",
        "Generalization",
        "Memory use",
        "Speed",
        "Model comparison",
        "Paper reference values",
        "arXiv:1410.5401",
        "loss is NaN at step 31",
        "diverged 1/3",
        "cpu (test)",
        "abc123",
        "2.x",
    ):
        assert needle in text, needle
    figures = {p.name for p in (report.parent / "figures").iterdir()}
    for name in (
        "copy_learning",
        "ngrams_learning",
        "copy_generalization",
        "copy_ntm_memory",
        "copy_lstm_memory",
        "speed_scaling",
    ):
        assert {f"{name}.png", f"{name}.svg"} <= figures, name


def test_every_link_exists_and_is_local(report):
    text = report.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert len(links) > 10
    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        if not link.startswith("#"):
            assert (report.parent / link).is_file(), link
    assert "<script" not in text


def test_tables_contain_every_model_task_pair(report, full_store):
    runs = Store(full_store).runs()
    pairs = set(zip(runs.task, runs.model))
    csv = pd.read_csv(report.parent / "tables" / "bits_per_sequence.csv")
    assert set(zip(csv.task, csv.model)) == pairs
    for kind in ("md", "tex"):
        text = (report.parent / "tables" / f"bits_per_sequence.{kind}").read_text()
        lines = [line for line in text.splitlines() if "&" in line or line.startswith("|")]
        for task, model in pairs:
            escaped = task.replace("_", r"\_") if kind == "tex" else task
            assert any(escaped in line and model in line for line in lines), (kind, task, model)
    comparison = pd.read_csv(report.parent / "tables" / "model_comparison.csv")
    assert set(comparison.task) == set(TASKS)


def test_numbers_equal_hand_computed(full_store):
    table = tables.bits_table(Store(full_store).runs(), load_reference()).set_index(
        ["task", "model"]
    )
    lstm = table.loc[("copy", "lstm")]
    # 10, 12, 17: median 12, mean 13, s = sqrt(13), half-width t * s / sqrt(3)
    half = T_975_2 * math.sqrt(13) / math.sqrt(3)
    assert lstm.cost_median == 12 and lstm.cost_mean == pytest.approx(13)
    assert (lstm.cost_ci_low, lstm.cost_ci_high) == pytest.approx((13 - half, 13 + half))
    assert lstm.converged_fraction == pytest.approx(2 / 3) and lstm.seqs_to_converge_median == 3200
    assert lstm.paper_n_params == "1,352,969" and lstm.n_params == "567"
    ntm = table.loc[("copy", "ntm")]
    assert (
        ntm.status == "2/3 done, diverged 1/3"
        and ntm.n == 2
        and ntm.cost_median == pytest.approx(0.6)
    )
    assert ntm.converged == 2 and ntm.converged_fraction == pytest.approx(2 / 3)
    shown = tables.format_bits_table(table.reset_index())
    assert shown.loc[1, "cost mean ± 95% CI"] == f"13.00 ± {half:.2f}"
    comparison = tables.comparison_table(Store(full_store).runs()).set_index(
        ["task", "model_a", "model_b"]
    )
    row = comparison.loc[("copy", "ntm", "lstm")]
    # complete separation of 2 vs 3 values: exact two-sided p = 2 / C(5, 2) = 0.2
    assert row.p_value == pytest.approx(0.2) and row.median_diff == pytest.approx(0.6 - 12)
    assert row.hodges_lehmann == pytest.approx(
        np.median([a - b for a in (0.5, 0.7) for b in (10, 12, 17)])
    )


def test_statistics_degenerate_cases():
    mean, low, high = tables.ci95([4.0])
    assert mean == 4.0 and math.isnan(low) and math.isnan(high)
    assert tables.mean_ci(mean, low, high) == "4.00"
    assert tables.compare([1.0], [2.0, 3.0])["note"].startswith("n/a")
    same = tables.compare([1.0, 1.0], [1.0, 1.0])
    assert math.isnan(same["p_value"]) and "identical" in same["note"]
    assert (
        tables.format_comparison(
            pd.DataFrame([{"task": "t", "model_a": "a", "model_b": "b", **same}])
        )["Mann-Whitney p"].iloc[0]
        == "n/a"
    )


def test_empty_missing_and_unknown_profile_raise(tmp_path, full_store):
    with pytest.raises(ReportError, match="no results store"):
        build_report(tmp_path / "missing.sqlite", out_dir=tmp_path / "out")
    Store(tmp_path / "empty.sqlite").close()
    with pytest.raises(ReportError, match="has no runs"):
        build_report(tmp_path / "empty.sqlite", out_dir=tmp_path / "out")
    with pytest.raises(ReportError, match="no runs of profile 'paper'.*tiny"):
        build_report(full_store, "paper", out_dir=tmp_path / "out")


def test_partial_store_builds(tmp_path):
    path = tmp_path / "partial.sqlite"
    store = Store(path)
    for seed in SEEDS:  # one task, no evals, no traces, no speed rows; one seed diverged
        write_run(store, "copy", "ntm", seed, evals=False, traces=False)
    store.close()
    index = build_report(path, "tiny", out_dir=tmp_path / "out")
    text = index.read_text()
    assert (
        "No benchmark rows" in text
        and "No evaluations in the store" in text
        and "No traces" in text
    )
    assert "No task has runs of two or more models" in text
    for link in re.findall(r'(?:src|href)="([^"#][^"]*)"', text):
        assert (index.parent / link).is_file(), link


def test_reference_file_loads_and_settings_match():
    reference = load_reference()
    assert reference["tasks"]["copy"]["params"]["lstm"] == 1352969
    assert setting_matches({"max_length": 20}, [{"max_length": 20, "width": 8}])
    assert not setting_matches({"max_length": 20}, [{"max_length": 20}, {"max_length": 10}])
    assert not setting_matches({"item_length": 3}, [{"width": 6}])
