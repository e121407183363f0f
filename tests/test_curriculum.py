"""train.curriculum: the schedule by hand, the sampled lengths that follow it in single runs and
batched seed groups (validation on the full task), run_ids, determinism, and a kill-and-resume
that ends bit for bit where an uninterrupted suite does."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

from ntm_bench.benchmarks.harness import runner
from ntm_bench.benchmarks.harness.config import ConfigError, load_profile
from ntm_bench.benchmarks.harness.curriculum import Curriculum, read
from ntm_bench.benchmarks.harness.plan import RunSpec, group_units, plan_runs
from conftest import BUILTIN_TASKS, snapshot, suite_process, tiny_profile
from ntm_bench.reports import learning
from ntm_bench.reports.curriculum import draw_curriculum, growth
from ntm_bench.reports.style import model_colors, model_label, new_figure
from ntm_bench.results.store import Store
from ntm_bench.tasks import TASKS
from ntm_bench.tasks.copy import Copy

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE = {"axis": "length", "start": 2, "every": 3, "step": 2}  # max_length 7: 2, 4, 6, 7, 7, ...
STEPS, BATCH, EVAL_SIZE = 14, 16, 5


def expected_max(steps_done: int, start=2, every=3, step=2, task_max=7) -> int:
    """The brief's formula, written out again: min(start + step * floor(s / every), max_length)."""
    return min(start + step * (steps_done // every), task_max)


def test_the_maximum_is_the_hand_computed_schedule():
    curriculum = read(SCHEDULE)
    by_hand = [2, 2, 2, 4, 4, 4, 6, 6, 6, 7, 7, 7, 7]
    assert (
        [curriculum.maximum(s, 7) for s in range(13)]
        == by_hand
        == [expected_max(s) for s in range(13)]
    )
    # step defaults to 1
    assert read({"axis": "length", "start": 3, "every": 10}) == Curriculum("length", 3, 10, 1)
    assert read("none") == "none"


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_every_task_can_be_capped_along_each_axis(name):
    """capped(axis, minimum) draws no longer a batch than the minimum with the other axes at their
    largest, and leaves the task itself as it was."""
    task = TASKS[name]()
    for axis in task.axes:
        low, high = task.min_size(axis), task.max_size(axis)
        view = task.capped(axis, low)
        assert view.max_size(axis) == low and task.max_size(axis) == high
        largest = {**{a: task.max_size(a) for a in task.axes}, axis: low}
        longest = task.sample(4, torch.Generator().manual_seed(0), **largest)
        drawn = view.sample(64, torch.Generator().manual_seed(1))
        assert drawn.inputs.shape[0] <= longest.inputs.shape[0]


class RecordingCopy(Copy):
    """Copy that logs every batch it draws: (batch size, max_length in force, fixed length,
    lengths)."""

    log: list = []

    def sample(self, batch_size, generator, length=None):
        batch = super().sample(batch_size, generator, length)
        RecordingCopy.log.append(
            (batch_size, self.max_length, length, batch.mask.sum(0).int().tolist())
        )
        return batch


def recording_specs(tmp_path, model: str, curriculum) -> list[RunSpec]:
    path = tmp_path / "rec.yaml"
    path.write_text(f"""
seeds: [1, 2]
train: {{steps: {STEPS}, batch_size: {BATCH}, eval_interval: 7, eval_size: {EVAL_SIZE},
  log_interval: 7,
        checkpoint_interval: 100, lr: 0.01, curriculum: {json.dumps(curriculum)}}}
models:
  ntm: {{controller_size: 8, memory_size: 8, memory_width: 4}}
  lstm: {{hidden_size: 8, num_layers: 1}}
tasks:
  rec_copy: {{width: 3, min_length: 1, max_length: 7, eval: {{length: [9]}}}}
""")
    return plan_runs(load_profile(str(path)), [model], ["rec_copy"])


def training_draws(per_step: int) -> list[list[tuple]]:
    """The log's training batches, grouped by step (a group of K seeds draws K per step)."""
    train = [entry for entry in RecordingCopy.log if entry[0] == BATCH and entry[2] is None]
    return [train[i : i + per_step] for i in range(0, len(train), per_step)]


@pytest.mark.parametrize("model,seeds", [("lstm", 1), ("ntm", 2)])
def test_sampled_lengths_follow_the_schedule_and_validation_stays_full(
    model, seeds, tmp_path, monkeypatch
):
    monkeypatch.setitem(TASKS, "rec_copy", RecordingCopy)
    monkeypatch.setattr(RecordingCopy, "log", [])
    units = group_units(recording_specs(tmp_path, model, SCHEDULE))
    assert [len(unit) for unit in units] == ([2] if seeds == 2 else [1, 1])
    RecordingCopy.log.clear()
    if seeds == 2:
        runner.execute_group(units[0], tmp_path / "ck")
    else:
        runner.execute(units[0][0], tmp_path / "ck")
    steps = training_draws(seeds)
    assert len(steps) == STEPS
    for steps_done, draws in enumerate(steps):
        for _, maximum, fixed, lengths in draws:
            assert fixed is None and maximum == expected_max(steps_done), steps_done
            assert all(1 <= n <= maximum for n in lengths), (steps_done, lengths)
    for bound in (
        2,
        4,
        6,
        7,
    ):  # each maximum is reached while it holds, so the draws span [1, bound]
        drawn = {
            n
            for s, draws in enumerate(steps)
            if expected_max(s) == bound
            for d in draws
            for n in d[3]
        }
        assert max(drawn) == bound and min(drawn) == 1
    validation = [
        entry for entry in RecordingCopy.log if entry[0] == EVAL_SIZE and entry[2] is None
    ]
    assert validation and all(maximum == 7 for _, maximum, _, _ in validation)


def test_run_ids_leave_out_none_and_record_a_curriculum(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "rec_copy", RecordingCopy)
    plain, explicit = (
        recording_specs(tmp_path, "lstm", "none")[0],
        recording_specs(tmp_path, "lstm", "none")[0],
    )
    scheduled = recording_specs(tmp_path, "lstm", SCHEDULE)[0]
    assert "curriculum" not in plain.config()["train"] and plain.run_id == explicit.run_id
    assert (
        scheduled.config()["train"]["curriculum"] == SCHEDULE and scheduled.run_id != plain.run_id
    )
    # as config_json reads back
    stored = RunSpec.from_config(json.loads(json.dumps(scheduled.config())), "rec")
    assert stored.train.curriculum == Curriculum(**SCHEDULE) and stored.run_id == scheduled.run_id


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "train.curriculum={axis: items, start: 2, every: 3}",
            "train.curriculum.axis: RecordingCopy has no axis 'items'",
        ),
        (
            "train.curriculum={axis: length, start: 8, every: 3}",
            "train.curriculum.start 8 must lie in the task's",
        ),
        (
            "train.curriculum={axis: length, start: 2, every: -1}",
            "train.curriculum.every must be a positive integer",
        ),
    ],
)
def test_bad_curricula_are_config_errors(override, message, tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "rec_copy", RecordingCopy)
    recording_specs(tmp_path, "lstm", "none")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        plan_runs(load_profile(str(tmp_path / "rec.yaml"), [override]), ["lstm"], ["rec_copy"])


def results_without_timings(result: dict) -> dict:
    return {
        "curves": [{k: v for k, v in c.items() if k != "wall_s"} for c in result["curves"]],
        "evals": result["evals"],
        "final": (result["final_cost_bits"], result["final_bit_errors"]),
    }


def test_a_curriculum_run_is_deterministic_and_differs_from_none(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "rec_copy", RecordingCopy)
    spec = recording_specs(tmp_path, "lstm", SCHEDULE)[0]
    first = results_without_timings(runner.execute(spec, tmp_path / "a"))
    assert results_without_timings(runner.execute(spec, tmp_path / "b")) == first
    plain = recording_specs(tmp_path, "lstm", "none")[0]
    assert (
        results_without_timings(runner.execute(plain, tmp_path / "c"))["curves"] != first["curves"]
    )


KILL_TRAIN = {
    "steps": 12,
    "checkpoint_interval": 5,
    "curriculum": {"axis": "length", "start": 1, "every": 3},
}
KILL_TASKS = {"copy": {"width": 3, "max_length": 4, "eval": {"length": [2, 5]}}}


def suite(profile: str, store: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return suite_process(profile, store, env=env)


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory) -> Path:
    """An uninterrupted suite of the tiny profile with a curriculum: NTM seeds 1 and 2 as one
    batched group, then the LSTM seeds alone."""
    folder = tmp_path_factory.mktemp("curriculum_reference")
    out = suite(tiny_profile(folder, KILL_TRAIN, KILL_TASKS), folder / "reference.sqlite")
    assert out.returncode == 0, out.stderr
    return folder / "reference.sqlite"


@pytest.fixture(scope="module")
def uninterrupted(reference_store):
    return snapshot(reference_store)


# step:8 stops the first unit (a batched NTM group) 3 steps past its checkpoint at 5, across the
# schedule's growth at 6; step:20 stops the second (an LSTM seed) at its step 8.
@pytest.mark.parametrize("kill_at", ["step:8", "step:20"])
def test_curriculum_resumes_bit_for_bit_after_a_kill(kill_at, tmp_path, uninterrupted):
    profile, store = tiny_profile(tmp_path, KILL_TRAIN, KILL_TASKS), tmp_path / "killed.sqlite"
    killed = suite(profile, store, {"NTM_BENCH_KILL_AT": kill_at})
    assert killed.returncode == -9, killed.stderr
    resumable = [
        p for p in (tmp_path / "checkpoints").glob("*.pt") if not p.name.endswith(".final.pt")
    ]
    assert len(resumable) == 1, "the kill leaves one checkpoint to resume from"
    rerun = suite(profile, store)
    assert rerun.returncode == 0, rerun.stderr
    assert snapshot(store) == uninterrupted


def test_the_report_reads_the_same_schedule_from_config_json():
    config = {
        "train": {"steps": 40, "batch_size": 4, "curriculum": SCHEDULE},
        "task_params": {"max_length": 7},
    }
    maxima = [read(SCHEDULE).maximum(s, 7) for s in range(40)]
    by_rises = [(s, maxima[s]) for s in range(1, 40) if maxima[s] > maxima[s - 1]]
    assert growth(config) == by_rises == [(3, 4), (6, 6), (9, 7)]
    assert growth({**config, "train": {**config["train"], "steps": 6}}) == [
        (3, 4)
    ]  # a rise needs a batch after it
    assert growth({"train": {"steps": 40}, "task_params": {}}) == []


def without_curriculum(text: str) -> str:
    config = json.loads(text)
    del config["train"]["curriculum"]
    return json.dumps(config)


def test_learning_curves_mark_where_the_maximum_grows(reference_store, tmp_path):
    store = Store(reference_store)
    runs, curves = store.runs(), store.curves()
    store.close()
    colors = model_colors(set(runs.model))
    rises = [12, 24, 36]  # after steps 3, 6 and 9 at batch size 4 (max length 2, 3, 4)
    # One schedule shared by both models: one grey set of ticks; only the LSTM's: in its colour.
    lstm_only = runs.assign(
        config_json=[
            t if m == "lstm" else without_curriculum(t)
            for m, t in zip(runs.model, runs.config_json)
        ]
    )
    both = f"{model_label('ntm')}, {model_label('lstm')}"
    for frame, color, who in ((runs, "0.3", both), (lstm_only, colors["lstm"], "LSTM")):
        axes = new_figure(6, 3).subplots(1, 2)
        handles, caption = draw_curriculum(axes, frame, colors, xmax=48.0)
        for ax in axes:
            assert sorted(line.get_xdata()[0] for line in ax.get_lines()) == rises
            assert all(line.get_color() == color for line in ax.get_lines())
        assert len(handles) == 1 and f"{who}: max length 1 → 4, +1 every 3 steps" in caption
    assert draw_curriculum(
        axes, runs.assign(config_json=runs.config_json.map(without_curriculum)), colors, 48.0
    ) == ([], "")
    saved = learning.learning_curves("copy", runs, curves, {}, colors, tmp_path)
    assert "Ticks along the top edge" in saved.caption and (tmp_path / saved.png).is_file()
