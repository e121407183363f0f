"""Evaluation points: joint points that set several axes, channel groups scored apart (repeat
copy's end marker), points beyond a model's memory, and the store's migration of version-1 evals."""

import sqlite3

import pytest
import torch

from ntm_bench.benchmarks.harness.evaluate import (
    eval_points,
    generalization,
    point_name,
    score_sequences,
    sweep_set,
)
from ntm_bench.models import build_model
from ntm_bench.results.store import Store
from ntm_bench.tasks import build_task
from ntm_bench.tasks.base import Batch


class Constant(torch.nn.Module):
    """Outputs the same logit everywhere: its costs and errors can be computed by hand."""

    memory_size = None

    def __init__(self, logit: float, output_size: int):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(float(logit)))
        self.output_size = output_size

    def forward(self, inputs):
        return self.bias.expand(*inputs.shape[:2], self.output_size)


def test_eval_points_single_axes_first_then_joint_points():
    sweeps = {"length": [5, 20], "repeats": [3], "joint": [{"length": 20, "repeats": 10}]}
    assert eval_points(sweeps) == [
        {"length": 5},
        {"length": 20},
        {"repeats": 3},
        {"length": 20, "repeats": 10},
    ]
    assert point_name({"length": 20, "repeats": 10}) == "length=20,repeats=10"


def test_joint_point_sets_both_axes_for_every_sequence():
    task = build_task("repeat_copy", width=3, max_length=4, max_repeats=3)
    batch = sweep_set("repeat_copy", {}, task, {"length": 6, "repeats": 5}, 7)
    # Every sequence: length 6 and 5 repeats, so 6 * 5 content steps and one end marker, scored.
    assert (batch.mask.sum(0) == 6 * 5 + 1).all()
    assert (batch.targets[:, :, 3].sum(0) == 1).all()
    # Fixed: the same point gives the same batch, another point another one.
    again = sweep_set("repeat_copy", {}, task, {"length": 6, "repeats": 5}, 7)
    assert torch.equal(batch.inputs, again.inputs)
    other = sweep_set("repeat_copy", {}, task, {"length": 6, "repeats": 4}, 7)
    assert other.inputs.shape != batch.inputs.shape


def test_channel_groups_add_up_and_are_counted_by_hand():
    """Logit 0 everywhere: every scored bit costs exactly 1 bit. Logit -1 (predict 0): the wrong
    bits are the ones, so the end marker is wrong exactly once per sequence."""
    task = build_task("repeat_copy", width=3, max_length=4, max_repeats=3)
    batch = sweep_set("repeat_copy", {}, task, {"length": 2, "repeats": 3}, 5)
    half = score_sequences(Constant(0.0, 4), batch, task.channels)
    # 2 x 3 replay steps + 1 marker step are scored; on each, 3 content bits and 1 marker bit.
    assert torch.allclose(half.channels["content"][0], torch.full((5,), 7 * 3.0))
    assert torch.allclose(half.channels["end_marker"][0], torch.full((5,), 7.0))  # 7 scored steps
    assert torch.allclose(
        half.cost_bits, half.channels["content"][0] + half.channels["end_marker"][0]
    )
    zeros = score_sequences(Constant(-1.0, 4), batch, task.channels)
    assert torch.equal(zeros.channels["end_marker"][1], torch.ones(5))
    ones_in_content = (batch.targets[:, :, :3] * batch.mask[..., None]).sum((0, 2))
    assert torch.equal(zeros.channels["content"][1], ones_in_content)
    assert torch.equal(zeros.bit_errors, ones_in_content + 1)


def test_generalization_rows_mark_points_beyond_the_memory():
    task = build_task("copy", width=3, max_length=4)
    torch.manual_seed(0)
    ntm = build_model(
        "ntm", task.input_size, task.output_size, controller_size=6, memory_size=8, memory_width=4
    )
    rows = generalization(ntm, "copy", {}, task, {"length": [4, 8, 9]}, 3)
    assert [(r["point"], r["memory_needed"], r["beyond_memory"]) for r in rows] == [
        ("length=4", 4, False),
        ("length=8", 8, False),
        ("length=9", 9, True),
    ]
    assert all(r["channels"] is None and r["axis"] == "length" for r in rows)
    lstm = build_model("lstm", task.input_size, task.output_size, hidden_size=4, num_layers=1)
    assert generalization(lstm, "copy", {}, task, {"length": [9]}, 3)[0]["beyond_memory"] is None


def test_joint_rows_round_trip_through_the_store(tmp_path):
    task = build_task("repeat_copy", width=3, max_length=4, max_repeats=3)
    rows = generalization(
        Constant(0.0, 4),
        "repeat_copy",
        {},
        task,
        {"repeats": [2], "joint": [{"length": 2, "repeats": 3}]},
        4,
    )
    store = Store(tmp_path / "s.sqlite")
    store.register("r1", "lstm", "repeat_copy", 1, "p", {})
    store.finish_run("r1", [], rows, status="done")
    evals = store.evals().set_index("point")
    assert evals.loc["length=2,repeats=3", "axis"] == "length,repeats"
    assert evals.loc["length=2,repeats=3", "value"] is pd_na()
    assert evals.loc["repeats=2", "value"] == 2
    assert '"end_marker"' in evals.loc["length=2,repeats=3", "channels_json"]


def pd_na():
    import pandas as pd

    return pd.NA


def test_version_1_store_is_migrated_with_its_evals(tmp_path):
    path = tmp_path / "old.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.executescript("""
        DROP TABLE evals;
        CREATE TABLE evals (run_id TEXT NOT NULL REFERENCES runs(run_id), axis TEXT NOT NULL,
            value INTEGER NOT NULL, cost_bits REAL, bit_errors REAL, n INTEGER,
            PRIMARY KEY (run_id, axis, value));
        INSERT INTO runs (run_id, model, task, seed, profile, config_json, status)
            VALUES ('r1', 'ntm', 'copy', 1, 'quick', '{}', 'done');
        INSERT INTO evals VALUES ('r1', 'length', 20, 3.5, 1.25, 256);
        ALTER TABLE runs DROP COLUMN fingerprint_json;
        ALTER TABLE runs DROP COLUMN trivial_json;
        ALTER TABLE speed DROP COLUMN fingerprint_json;
        PRAGMA user_version = 1;
    """)
    db.close()
    evals = Store(path).evals()
    assert evals[["point", "axis", "value", "cost_bits", "bit_errors", "n"]].values.tolist() == [
        ["length=20", "length", 20, 3.5, 1.25, 256]
    ]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


@pytest.mark.parametrize("name", ["copy", "repeat_copy", "associative_recall", "priority_sort"])
def test_memory_needed_grows_with_the_stored_axis(name):
    task = build_task(name)
    axis = task.axes[0]
    top = task.max_size(axis)
    assert task.memory_needed() == task.memory_needed(**{axis: top})
    assert task.memory_needed(**{axis: 2 * top}) > task.memory_needed()


def test_score_sequences_matches_score_on_padded_batches():
    task = build_task("copy", width=3, max_length=4)
    batch = task.sample(6, torch.Generator().manual_seed(3))
    model = Constant(0.3, 3)
    scores = score_sequences(model, Batch(*batch))
    assert scores.channels == {}
    assert scores.cost_bits.shape == (6,)
