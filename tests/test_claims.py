"""reports/claims.py and reports/survival.py on hand-built frames: verdicts, censoring against hand
Kaplan-Meier values, the log-rank and Mann-Whitney directions, channels, the paper-setting rule,
the real claims.yaml, and the report's new sections on small stores."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from ntm_bench.reports import claim_measures, claims, claims_file, convergence, survival
from ntm_bench.reports.build import build_report
from ntm_bench.reports.reference import load_reference
from ntm_bench.results.store import Store
from test_reports import write_run

REFERENCE = load_reference()
BUDGET = 10000
TRIVIAL = 100.0  # every hand-built run's chance cost
AR_SETTING = {"width": 6, "item_length": 3, "min_items": 2, "max_items": 6}


def run(
    model,
    seed,
    task="copy",
    status="done",
    converged=None,
    cost=None,
    reference=None,
    params=None,
    stopped=None,
):
    """One runs row and its last curve point: converged runs stop there, others at the budget
    (diverged: at `stopped`)."""
    config = {
        "model_params": {},
        "task_params": params or {},
        "train": {"steps": BUDGET // 10, "batch_size": 10},
        "seed": seed,
    }
    row = {
        "run_id": f"{task}-{model}-{seed}",
        "model": model,
        "task": task,
        "seed": seed,
        "profile": "t",
        "config_json": json.dumps(config),
        "status": status,
        "converged_step": None if converged is None else converged // 10,
        "converged_sequences": converged,
        # a done run without a cost of its own has learned the task: far below its chance cost
        "final_cost_bits": 1.0 if cost is None and status == "done" else cost,
        "final_bit_errors": None,
        "reference_cost_bits": reference,
        "trivial_json": json.dumps({"chance": TRIVIAL}),
        "n_params": 10,
    }
    last = converged or (stopped if status == "diverged" else BUDGET)
    return row, {
        "run_id": row["run_id"],
        "model": model,
        "task": task,
        "seed": seed,
        "split": "val",
        "step": last // 10,
        "sequences": last,
        "cost_bits": 1.0,
        # converged runs end settled below the threshold, the others above it
        "bit_errors": 0.0 if converged is not None else 1.0,
        "wall_s": 1.0,
    }


def frames(specs):
    """(runs, curves) from a list of run(...) results; pending/running runs get no curve."""
    rows, points = zip(*specs)
    curves = [p for r, p in zip(rows, points) if r["status"] in ("done", "diverged")]
    return pd.DataFrame(list(rows)), pd.DataFrame(curves)


NO_EVALS = pd.DataFrame(
    columns=[
        "run_id",
        "model",
        "task",
        "seed",
        "point",
        "axis",
        "value",
        "cost_bits",
        "bit_errors",
        "n",
        "channels_json",
        "memory_needed",
        "beyond_memory",
    ]
)


def claim(measure, test, task="copy", **extra):
    return claims_file.check_claim(
        {
            "id": "c",
            "task": task,
            "claim": "x",
            "paper": {"text": "p", "source": "graves2014"},
            "measure": measure,
            "test": test,
            **extra,
        },
        REFERENCE["sources"],
        set(),
    )


def verdict(entry, runs, curves, evals=NO_EVALS):
    row = claims.evaluate_claims(runs, curves, evals, [entry], REFERENCE).iloc[0]
    return row.verdict, row.ours, row.why


FOUR_AND_CENSORED = [run("ntm", s, converged=1000 * s) for s in (1, 2, 3, 4)] + [run("ntm", 5)]


def test_converged_fraction_holds_fails_and_is_inconclusive_while_pending():
    runs, curves = frames(FOUR_AND_CENSORED)
    measure = {"kind": "converged_fraction", "model": "ntm", "within": None}
    assert verdict(claim(measure, {"at_least": 0.8}), runs, curves)[0] == "holds"
    result, ours, why = verdict(claim(measure, {"at_least": 0.9}), runs, curves)
    assert result == "fails" and "KM 0.80" in ours and "n=5" in ours
    pending = frames(
        [run("ntm", s, converged=500 * s) for s in (1, 2, 3)]
        + [run("ntm", s, status="pending") for s in (4, 5)]
    )
    result, _, why = verdict(claim(measure, {"at_least": 0.8}), *pending)
    assert result == "inconclusive" and "2 of 5 ntm seeds pending" in why


def test_never_converged_run_is_censored_in_the_denominator():
    runs, curves = frames(FOUR_AND_CENSORED)
    km = survival.fit(survival.observations(runs, curves))
    # by hand: S = 4/5, 3/5, 2/5, 1/5 after the events at 1000..4000; the censored run
    # keeps S at 1/5
    assert survival.converged_by(km, BUDGET).estimate == pytest.approx(0.8)
    assert survival.converged_by(km, 2500).estimate == pytest.approx(0.4)
    assert km.median == 3000 and (km.n, km.events) == (5, 4)
    assert km.ci_low <= km.median <= km.ci_high
    # dropping the censored run would claim 1.0
    assert (
        survival.converged_by(
            survival.fit(survival.observations(runs.iloc[:4], curves)), BUDGET
        ).estimate
        == 1.0
    )
    none = frames([run("lstm", s) for s in (1, 2, 3)])
    km = survival.fit(survival.observations(*none))
    assert math.isinf(km.median) and survival.median_text(km, BUDGET) == "> budget (10,000)"
    table = convergence.km_table(*none)
    assert (
        table.median_text.iloc[0] == "> budget (10,000)" and table.converged_by_budget.iloc[0] == 0
    )
    # a median not reached is only known to exceed the longest run: it decides at_most 0.5 of the
    # budget
    median = {"kind": "sequences_to_converge", "model": "lstm", "relative_to_budget": True}
    result, ours, why = verdict(claim(median, {"at_most": 0.5}), *none)
    assert result == "fails" and "> budget (10,000)" in ours and why.startswith("> 1 not ≤ 0.5")
    late = claim(
        {"kind": "converged_fraction", "model": "lstm", "within": 2 * BUDGET}, {"at_most": 0.2}
    )
    assert "past the longest run" in verdict(late, *none)[2]
    diverged = frames([run("ntm", 1, status="diverged", stopped=700)])
    # A diverged run never converges: not converged within its whole budget, not cut short at 700.
    assert survival.observations(*diverged).sequences.iloc[0] == BUDGET


def test_logrank_direction():
    fast = [run("ntm", s, converged=100 * s) for s in range(1, 6)]
    slow = [run("lstm", s) for s in range(1, 6)]
    runs, curves = frames(fast + slow)
    obs = survival.observations(runs, curves)
    a, b = obs[obs.model == "ntm"], obs[obs.model == "lstm"]
    # scipy's convention, on the obvious case: "greater" = the first group's event rate is higher
    assert (
        stats.logrank(
            survival.censored_data(a), survival.censored_data(b), alternative="greater"
        ).pvalue
        < 0.01
    )
    assert survival.sooner(a, b).p_value < 0.01 and survival.sooner(b, a).p_value > 0.99
    measure = {"kind": "sequences_to_converge", "model": "ntm"}
    result, ours, why = verdict(claim(measure, {"below": {"model": "lstm"}}), runs, curves)
    assert result == "holds" and "log-rank" in why and "lstm" in ours
    reverse = claim({**measure, "model": "lstm"}, {"below": {"model": "ntm"}})
    assert verdict(reverse, runs, curves)[0] == "fails"
    assert convergence.logrank_table(runs, curves).p_value.iloc[0] < 0.01


def costs(a, b, min_seeds=3):
    runs, curves = frames(
        [run("ntm", s, cost=v) for s, v in enumerate(a, 1)]
        + [run("lstm", s, cost=v) for s, v in enumerate(b, 1)]
    )
    entry = claim(
        {"kind": "final_cost", "model": "ntm"}, {"below": {"model": "lstm"}}, min_seeds=min_seeds
    )
    return verdict(entry, runs, curves)


def test_mann_whitney_below():
    result, ours, why = costs([1, 2, 3, 4, 5], [10, 11, 12, 13, 14])
    assert result == "holds" and f"p={1 / 252:.3g}" in why and "ntm: median 3" in ours
    # in the paper's direction but undecided by five seeds a side: inconclusive, not failed
    result, _, why = costs([1, 3, 5, 7, 9], [2, 4, 6, 8, 10])
    assert result == "inconclusive" and "either way" in why and "power" in why
    # the data decide against the claim: it fails
    result, _, why = costs([10, 11, 12, 13, 14], [1, 2, 3, 4, 5])
    assert result == "fails" and "for the opposite direction" in why
    result, _, why = costs([1, 2], [10, 11], min_seeds=2)
    assert result == "inconclusive" and "smallest attainable p 0.167" in why
    # a diverged seed counts as the worst value
    runs, curves = frames(
        [run("ntm", s, cost=s) for s in range(1, 5)]
        + [run("ntm", 5, status="diverged", stopped=50)]
    )
    result, ours, _ = verdict(
        claim({"kind": "final_cost", "model": "ntm"}, {"at_most": 3}), runs, curves
    )
    assert result == "holds" and "1 diverged counted as inf" in ours


def eval_rows(model, point, channels, task="repeat_copy", content_errors=0.0):
    return [
        {
            "run_id": f"{task}-{model}-{s}",
            "model": model,
            "task": task,
            "seed": s,
            "point": point,
            "axis": "length,repeats",
            "value": None,
            "cost_bits": 50.0,
            "bit_errors": 99.0,
            "n": 8,
            "channels_json": json.dumps(
                {
                    "content": {"cost_bits": 1.0, "bit_errors": content_errors},
                    "end_marker": {"cost_bits": 2.0, "bit_errors": e},
                }
            ),
            "memory_needed": 200,
            "beyond_memory": 1,
        }
        for s, e in enumerate(channels, 1)
    ]


def test_eval_channel_from_channels_json():
    runs, curves = frames([run("ntm", s, task="repeat_copy", converged=100) for s in range(1, 6)])
    point = "length=10,repeats=20"
    evals = pd.DataFrame(eval_rows("ntm", point, [0, 1, 2, 3, 4]))
    measure = {
        "kind": "eval",
        "model": "ntm",
        "point": point,
        "field": "bit_errors",
        "channel": "end_marker",
    }
    result, ours, _ = verdict(
        claim(measure, {"at_least": 1}, task="repeat_copy"), runs, curves, evals
    )
    assert result == "holds" and "median 2" in ours
    content = {**measure, "channel": "content"}
    assert (
        verdict(claim(content, {"at_most": 0}, task="repeat_copy"), runs, curves, evals)[0]
        == "holds"
    )
    unscored = {**measure, "channel": None}  # all channels: the row's bit_errors
    assert (
        verdict(claim(unscored, {"at_least": 99}, task="repeat_copy"), runs, curves, evals)[0]
        == "holds"
    )
    missing = {**measure, "point": "length=20,repeats=10"}
    result, _, why = verdict(
        claim(missing, {"at_least": 1}, task="repeat_copy"), runs, curves, evals
    )
    assert result == "inconclusive" and "missing for 5 of 5 ntm runs" in why


def test_given_part_is_a_precondition_not_a_finding():
    """The end marker claim means something only when the content is copied: when the given part
    fails the claim is inconclusive (not failed, not held), and says which precondition."""
    runs, curves = frames([run("ntm", s, task="repeat_copy", converged=100) for s in range(1, 6)])
    point = "length=10,repeats=20"

    def part(channel, test, **extra):
        measure = {"kind": "eval", "model": "ntm", "point": point, "field": "bit_errors"}
        return {"measure": {**measure, "channel": channel}, "test": test, **extra}

    entry = claims_file.check_claim(
        {
            "id": "c",
            "task": "repeat_copy",
            "claim": "x",
            "paper": {"text": "p", "source": "graves2014"},
            "all_of": [
                part("content", {"at_most": 80}, given=True),
                part("end_marker", {"at_least": 1}),
            ],
        },
        REFERENCE["sources"],
        set(),
    )
    copied = pd.DataFrame(eval_rows("ntm", point, [0, 1, 2, 3, 4]))
    assert verdict(entry, runs, curves, copied)[0] == "holds"
    exact = pd.DataFrame(eval_rows("ntm", point, [0, 0, 0, 0, 0]))
    assert verdict(entry, runs, curves, exact)[0] == "fails"  # content right, marker right
    garbled = pd.DataFrame(eval_rows("ntm", point, [3] * 5, content_errors=700.0))
    result, ours, why = verdict(entry, runs, curves, garbled)
    assert result == "inconclusive" and "given length=10,repeats=20 content bit_errors fails" in why
    assert "median 700" in ours  # the numbers behind it are still shown

    def bad(parts):
        claims_file.check_claim(
            {**{k: entry[k] for k in ("id", "task", "claim", "paper")}, "all_of": parts},
            REFERENCE["sources"],
            set(),
        )

    with pytest.raises(ValueError, match="'c'.*all_of.*not `given`"):
        bad([part("content", {"at_most": 80}, given=True)])
    with pytest.raises(ValueError, match="'c'.*given.*true or false"):
        bad([part("content", {"at_most": 80}, given="yes"), part("end_marker", {"at_least": 1})])
    with pytest.raises(ValueError, match="'c'.*gven.*unknown key of a part"):
        bad([part("content", {"at_most": 80}, gven=True), part("end_marker", {"at_least": 1})])


def test_paper_setting_mismatch_is_inconclusive_but_comparisons_still_count():
    def ar(params):
        specs = [
            run(m, s, task="associative_recall", converged=100, params=params)
            for m in ("ntm", "lstm")
            for s in range(1, 6)
        ]
        evals = pd.DataFrame(
            [
                {**r, "point": "items=20", "cost_bits": c, "channels_json": None}
                for m, c in (("ntm", 7.0), ("lstm", 38.0))
                for r in eval_rows(m, "items=20", [0] * 5, task="associative_recall")
            ]
        )
        return (*frames(specs), evals)

    entry = claim(
        {"kind": "eval", "model": "ntm", "point": "items=20", "field": "cost_bits"},
        {"in_range": [3.5, 14], "paper_setting": True},
        task="associative_recall",
    )
    assert verdict(entry, *ar(AR_SETTING))[0] == "holds"
    result, _, why = verdict(entry, *ar({**AR_SETTING, "max_items": 4}))
    assert (
        result == "inconclusive"
        and "not the paper's task sizes" in why
        and "max_items 4 (paper 6)" in why
    )
    below = claim(
        {"kind": "eval", "model": "ntm", "point": "items=20", "field": "cost_bits"},
        {"below": {"model": "lstm"}},
        task="associative_recall",
    )
    result, _, why = verdict(below, *ar({**AR_SETTING, "max_items": 4}))
    assert result == "holds" and "at our task sizes" in why


def test_real_claims_load_and_name_known_models_and_tasks(tmp_path):
    from ntm_bench.models import MODELS
    from ntm_bench.tasks import TASKS

    loaded = claims_file.load_claims()
    assert len(loaded) >= 25 and len({c["id"] for c in loaded}) == len(loaded)
    for entry in loaded:
        assert entry["task"] in TASKS, entry["id"]
        for part in entry["parts"]:
            assert all(m in MODELS for m in claims.part_models(part)), entry["id"]
            if (
                set(part["test"]) & {"at_least", "at_most", "in_range"}
                and part["measure"]["kind"] != "eval"
            ):
                assert entry.get("budget_note"), entry["id"]
    bad = yaml.safe_load(claims_file.CLAIMS_PATH.read_text())
    bad["claims"][3]["measure"]["kind"] = "accuracy"
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=rf"{bad['claims'][3]['id']}.*measure.kind"):
        claims_file.load_claims(path)
    bad["claims"][3]["measure"]["kind"], bad["claims"][3]["paper"]["source"] = (
        "final_cost",
        "nature",
    )
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=rf"{bad['claims'][3]['id']}.*paper"):
        claims_file.load_claims(path)


def test_frame_columns_and_text_formats():
    runs, curves = frames(FOUR_AND_CENSORED)
    frame = claims.evaluate_claims(runs, curves, NO_EVALS, claims_file.load_claims(), REFERENCE)
    assert list(frame.columns) == claims.COLUMNS and set(frame.task) == {"copy"}
    assert set(frame.verdict) <= {"holds", "fails", "inconclusive"}
    text = claims.format_claims_text(frame)
    assert text.startswith("Does the paper replicate?") and "copy_ntm_converges" in text
    assert "| copy_ntm_converges |" in claims.claims_markdown(frame)


@pytest.mark.parametrize("models", [("ntm",), ("ntm", "lstm")])
def test_report_has_claims_and_kaplan_meier_sections(tmp_path, models):
    path = tmp_path / "store.sqlite"
    store = Store(path)
    rng = np.random.default_rng(0)
    for model in models:  # one model without evals; two with evals but none at the claims' points
        for seed in (1, 2, 3):
            write_run(store, "copy", model, seed, evals=len(models) > 1, traces=False, rng=rng)
    store.register("copy-ntm-9", "ntm", "copy", 9, "tiny", {"task_params": {}})  # pending
    store.close()
    index = build_report(path, out_dir=tmp_path / "out")
    text = index.read_text()
    assert text.index("Does the paper replicate?") < text.index("Runs that did not finish")
    assert (
        text.index("Learning curves")
        < text.index("Convergence (Kaplan–Meier)")
        < text.index("Generalization")
    )
    assert "copy_ntm_converges" in text and "seeds pending" in text
    tables = index.parent / "tables"
    for name in ("claims", "kaplan_meier") + (("logrank",) if len(models) > 1 else ()):
        assert (tables / f"{name}.csv").is_file() and (tables / f"{name}.md").is_file(), name
    assert (index.parent / "figures" / "copy_km.png").is_file()
    assert set(pd.read_csv(tables / "claims.csv").verdict) <= {"holds", "fails", "inconclusive"}
    for link in re.findall(r'(?:src|href)="([^"#][^"]*)"', text):
        assert (index.parent / link).is_file(), link


def test_a_model_at_a_trivial_cost_decides_nothing():
    # lstm at 60 of a chance cost of 100: not below half of it, so not learned
    result, ours, why = costs([1, 2, 3, 4, 5], [60, 61, 62, 63, 64])
    assert result == "inconclusive"
    assert "lstm not learned within 10,000 sequences: median final cost 62 ≥ 50" in why
    # ...while a claim that a model does not learn is decided by that model alone
    runs, curves = frames([run("lstm", s, cost=60) for s in (1, 2, 3)])
    measure = {"kind": "converged_fraction", "model": "lstm", "within": None}
    assert verdict(claim(measure, {"at_most": 0.2}), runs, curves)[0] == "inconclusive"
    entry = claim(measure, {"at_most": 0.2}, needs_learned=False)
    assert verdict(entry, runs, curves)[0] == "holds"


def test_learned_on_a_task_with_an_optimum_is_its_excess():
    # optimum 130, chance 200 (TRIVIAL is 100 here, so the chance is given per run): learned
    # below 130 + 0.5 * (200 - 130) = 165
    specs = [
        run("ntm", s, task="ngrams", cost=c, reference=130.0)
        for s, c in ((1, 160), (2, 164), (3, 170))
    ]
    runs, curves = frames(specs)
    runs["trivial_json"] = json.dumps({"chance": 200.0})
    found = claims.learned(runs, curves, "ntm", 0.5)
    assert found.state is True and "164" in found.text
    runs.loc[1, "final_cost_bits"] = 166.0
    found = claims.learned(runs, curves, "ntm", 0.5)
    assert found.state is False and "≥ 165 = optimum 130" in found.text
    runs["trivial_json"] = None
    assert claims.learned(runs, curves, "ntm", 0.5).state is None


def test_the_slope_at_the_end_tells_still_learning_from_flat():
    # validation every 1,000 sequences to the 10,000 budget; the last quarter is 8k, 9k, 10k.
    # seed 1 falls 1 bit per 10k sequences throughout, seed 2 is flat from 7k on, seed 3
    # falls 3 bits per 10k at the end: median slope -1, falling in 2 of 3 (exact lines: the
    # Theil-Sen interval is the slope itself); the diverged seed 4 is left out
    cost = {
        1: lambda k: 70 - 0.1 * k,
        2: lambda k: 70 - (k if k < 7 else 7),
        3: lambda k: 70 - 0.3 * k,
    }
    rows = [run("lstm", s, cost=60)[0] for s in (1, 2, 3)]
    rows.append(run("lstm", 4, status="diverged", stopped=3000)[0])
    points = [
        {"run_id": r["run_id"], "split": "val", "step": k * 100, "sequences": k * 1000,
         "cost_bits": cost[r["seed"]](k), "bit_errors": 1.0}
        for r in rows[:3]
        for k in range(11)
    ] + [{"run_id": rows[3]["run_id"], "split": "val", "step": k * 100, "sequences": k * 1000,
          "cost_bits": 70 - 5 * k, "bit_errors": 1.0} for k in range(4)]  # fmt: skip
    runs, curves = pd.DataFrame(rows), pd.DataFrame(points)
    slope = claim_measures.end_slope(runs, curves)
    assert slope == claim_measures.Slope(bits=pytest.approx(-1.0), falling=2, rising=0, runs=3)
    found = claims.learned(runs, curves, "lstm", 0.5)
    assert found.state is False and found.slope == slope
    assert found.text.endswith(
        "; slope over the last 25% of its sequences -1 bits per 10,000 sequences (median of 3; "
        "2 still falling, 1 flat at 95%)"
    )
    # a rising run, and a run with too few points at its end, which is left out
    first = curves.run_id == rows[0]["run_id"]
    rising = curves.assign(
        cost_bits=np.where(first, 60 + curves.sequences / 5000, curves.cost_bits)
    )
    sparse = rising[(rising.run_id != rows[2]["run_id"]) | (rising.sequences <= 1000)]
    assert claim_measures.end_slope(runs, sparse) == claim_measures.Slope(
        bits=pytest.approx(1.0), falling=0, rising=1, runs=2
    )
    assert claim_measures.end_slope(runs, curves.iloc[:0]) is None


def test_convergence_is_where_a_run_settles():
    # crossed at 2,000, fell back at 3,000, settled from 5,000 on; a second run crossed and fell
    # back for good: it counts as not converged, at its budget
    rows = [run("ntm", 1, converged=2000)[0], run("ntm", 2, converged=4000)[0]]
    errors = {1: [0.5, 0.05, 0.3, 0.2, 0.0, 0.0], 2: [0.5, 0.4, 0.3, 0.05, 0.5, 0.6]}
    points = [
        {
            "run_id": r["run_id"],
            "split": "val",
            "step": k * 100,
            "sequences": k * 1000,
            "bit_errors": e,
            "cost_bits": 1.0,
            "wall_s": 1.0,
        }
        for r in rows
        for k, e in enumerate(errors[r["seed"]])
    ]
    obs = survival.observations(pd.DataFrame(rows), pd.DataFrame(points))
    assert obs.converged.tolist() == [True, False]
    assert obs.sequences.tolist() == [4000.0, 5000.0]
    assert obs.first_crossing.tolist() == [2000.0, 4000.0]
    summary = claims.survival_summary(
        pd.DataFrame(rows), pd.DataFrame(points), {"kind": "sequences_to_converge"}
    )[0]
    assert "first crossing in 2 runs" in summary.text


def test_the_log_rank_p_is_exact():
    # five that converge against five that never do: the most extreme of the C(10, 5) = 252
    # splits, so p = 1/252 (the asymptotic test gives less than any permutation test can)
    a = pd.DataFrame({"sequences": [1e3, 2e3, 3e3, 4e3, 5e3], "converged": [True] * 5})
    b = pd.DataFrame({"sequences": [1e4] * 5, "converged": [False] * 5})
    assert survival.sooner(a, b, "greater").p_value == pytest.approx(1 / 252)
    assert survival.sooner(a, b, "less").p_value == pytest.approx(1.0)


def test_diverged_seeds_are_named():
    runs, curves = frames(
        [run("ntm", s, cost=s) for s in (1, 2, 4)]
        + [run("ntm", s, status="diverged", stopped=50) for s in (3, 5)]
    )
    _, ours, _ = verdict(
        claim({"kind": "final_cost", "model": "ntm"}, {"at_most": 3}), runs, curves
    )
    assert "2 diverged counted as inf (diverged: seeds 3, 5)" in ours


def test_the_verdict_figure_and_learned_table(tmp_path):
    from ntm_bench.reports.verdict_figure import learned_cell, learned_table, verdict_figure

    runs, curves = frames(
        [run("ntm", s, converged=1000 * s) for s in (1, 2, 3)]
        + [run("lstm", s, cost=80) for s in (1, 2, 3)]
    )
    table = learned_table(runs, curves, 0.5).set_index("model")
    assert table.state.to_dict() == {"lstm": False, "ntm": True}
    frame = claims.evaluate_claims(runs, curves, NO_EVALS, claims_file.load_claims(), REFERENCE)
    saved = verdict_figure(frame, table.reset_index(), tmp_path)
    assert (tmp_path / saved.png).stat().st_size > 0 and (tmp_path / saved.svg).is_file()
    # one curve point per run: no slope, so the cells say only yes / no
    assert table.slope.isna().all()
    assert [learned_cell(s, None)[1] for s in (True, False, None)] == ["yes", "no", "?"]
    # under a "no", what most of its runs' ends did
    slope = claim_measures.Slope
    assert learned_cell(False, slope(-1.0, falling=2, rising=0, runs=3))[1] == "no\nfalling"
    assert learned_cell(False, slope(-1.0, falling=1, rising=0, runs=2))[1] == "no\nflat"
    assert learned_cell(np.bool_(False), slope(-1.0, 2, 0, 3))[1] == "no\nfalling"  # a table's
    assert learned_cell(True, slope(-1.0, falling=3, rising=0, runs=3))[1] == "yes"
