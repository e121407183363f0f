"""The protocol comparison (benchmarks/harness/protocols.py) on hand-made runs: the common budget is
the smaller protocol's, convergence is read up to it and must hold to its last point there, and a
seed group's wall time is shared by its seeds."""

import pandas as pd

from ntm_bench.benchmarks.harness.protocols import comparison, decision


def run(run_id, profile, seed, started_at, wall_s):
    return dict(run_id=run_id, profile=profile, model="ntm", task="copy", seed=seed,
                status="done", started_at=started_at, wall_s=wall_s,
                trivial_json='{"chance": 80.0, "memoryless": 60.0}')  # fmt: skip


def points(run_id, errors, step_sequences):
    return [
        dict(
            run_id=run_id,
            split="val",
            step=i + 1,
            sequences=(i + 1) * step_sequences,
            cost_bits=10.0 * e,
            bit_errors=e,
        )  # fmt: skip
        for i, e in enumerate(errors)
    ]


def test_the_comparison_at_equal_sequences():
    runs = pd.DataFrame(
        [
            # the paper's protocol: two seeds trained as one model (same start), 4,000 sequences
            run("p1", "protocol", 1, 100.2, 80.0),
            run("p2", "protocol", 2, 100.4, 80.0),
            # ours: trained apart, 6,000 sequences (read up to 4,000)
            run("r1", "replicate", 1, 500.0, 12.0),
            run("r2", "replicate", 2, 900.0, 6.0),
        ]
    )
    curves = pd.DataFrame(
        points("p1", [5, 0.05, 0.2, 0.0], 1000)  # crosses at 2,000, settles at 4,000
        + points("p2", [5, 3, 2, 1], 1000)  # never
        + points("r1", [5, 5, 0.0, 0.0, 0.0, 0.0], 1000)  # settles at 3,000
        + points("r2", [5, 5, 5, 5, 0.0, 0.0], 1000)  # only after the common budget
    )
    table = comparison(runs, curves).set_index("protocol")
    assert table["common budget"].tolist() == [4000, 4000]
    assert table.loc["protocol", "sequences to converge"] == [4000, None]
    assert table.loc["replicate", "sequences to converge"] == [3000, None]
    assert table.converged.tolist() == [1, 1]
    assert table.loc["protocol", "cost at budget"] == [0.0, 10.0]
    assert table.loc["replicate", "cost at budget"] == [0.0, 50.0]
    # protocol: 80 s shared by 2 seeds over 4,000 sequences each: 10 s per 1,000
    assert table.loc["protocol", "s per 1k sequences"] == 10.0
    # replicate: 12 s / 6,000 and 6 s / 6,000 sequences: 2 and 1 s per 1,000, mean 1.5
    assert table.loc["replicate", "s per 1k sequences"] == 1.5
    assert table["best trivial"].tolist() == [60.0, 60.0]
    assert table["median cost"].tolist() == [5.0, 25.0]


def claim(id, task, models, needs_learned=True):
    parts = [{"measure": {"model": models[0]}, "test": {}}]
    if len(models) > 1:
        parts[0]["test"]["below"] = {"model": models[1]}
    return {"id": id, "task": task, "parts": parts, "needs_learned": needs_learned}


def row(model, task, protocol, median, seconds, budget=3600, seeds=(1, 2, 3)):
    return {"model": model, "task": task, "protocol": protocol, "seeds": list(seeds),
            "common budget": budget, "s per 1k sequences": seconds, "best trivial": 100.0,
            "median cost": median}  # fmt: skip


def test_the_decision_counts_decided_claims_per_machine_hour():
    table = pd.DataFrame(
        [
            # protocol: both models learn copy, 3 seeds x 3,600 sequences x 10 s / 1k = 108 s each
            row("ntm", "copy", "protocol", 10.0, 10.0),
            row("lstm", "copy", "protocol", 49.0, 10.0),
            # replicate: only the NTM learns (50 is not below half of 100), at a tenth of the time
            row("ntm", "copy", "replicate", 10.0, 1.0),
            row("lstm", "copy", "replicate", 50.0, 1.0),
        ]
    )
    claims = [
        claim("ntm_alone", "copy", ["ntm"]),
        claim("ntm_below_lstm", "copy", ["ntm", "lstm"]),
        claim("lstm_does_not", "copy", ["lstm"], needs_learned=False),
        claim("not_measured_model", "copy", ["dnc"]),
        claim("not_measured_task", "ngrams", ["ntm"]),
    ]
    out = decision(table, claims, 0.5).set_index("protocol")
    assert out["claims counted"].tolist() == [3, 3]
    assert out.loc["protocol", "decided claims"] == ["ntm_alone", "ntm_below_lstm", "lstm_does_not"]
    assert out.loc["replicate", "decided claims"] == ["ntm_alone", "lstm_does_not"]
    assert out.loc["protocol", "learned"] == ["lstm/copy", "ntm/copy"]
    # 2 x 108 s = 0.06 h; 3 decided: 50 per hour. replicate: 2 decided in 0.006 h: 333.33
    assert out["machine hours"].tolist() == [0.06, 0.01]
    assert out["decided per hour"].tolist() == [50.0, 333.33]


def test_the_published_table_is_what_the_published_runs_give(capsys):
    """results/published/protocol/comparison.txt is the command's output on the published runs
    (`python -m benchmarks.harness.protocols --update` writes it): rebuilt here from both grids'
    run files, nothing hand-edited."""
    from ntm_bench.benchmarks.harness import protocols

    assert protocols.main([]) == 0
    assert capsys.readouterr().out == protocols.TABLE.read_text()
