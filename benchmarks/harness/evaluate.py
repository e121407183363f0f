"""Fixed evaluation sets and generalization sweeps.

Every evaluation set is drawn from a generator seeded by the task's name, the task's parameters
and the point evaluated (never by the run's seed), so every model and seed is scored on
identical sequences: a model-to-model gap is not a different draw of the data.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ntm_bench.benchmarks.harness.seeding import fixed_generator
from ntm_bench.tasks.base import Batch, Task, per_sequence_bce_bits, per_sequence_bit_errors

VALIDATION = "validation"
CHUNK = 256  # sequences scored per forward pass, to bound memory on long sequences
JOINT = "joint"  # the eval block's list of points that set several axes at once


def validation_set(task_name: str, task_params: dict, task: Task, size: int) -> Batch:
    """The fixed validation batch: `size` sequences from the training distribution."""
    return task.sample(size, fixed_generator(task_name, task_params, f"{VALIDATION}:{size}"))


class Scores(NamedTuple):
    """Per-sequence scores of one batch: cost and bit errors [B], and per channel group of the
    task ({name: (cost [B], bit errors [B])}, empty when the task has no groups)."""

    cost_bits: torch.Tensor
    bit_errors: torch.Tensor
    channels: dict


@torch.no_grad()
def score_chunks(module: torch.nn.Module, forward, batch: Batch, score) -> list:
    """`score(logits, targets, mask)` of each chunk of CHUNK sequences of `batch`, its logits from
    `forward(inputs)` with `module` in eval mode (restored after). The one chunk loop behind
    score_sequences (one model) and batched.score_seeds (K seeds in one pass)."""
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    try:
        parts = []
        for start in range(0, batch.inputs.shape[1], CHUNK):
            inputs, targets, mask = (t[:, start : start + CHUNK].to(device) for t in batch)
            parts.append(score(forward(inputs), targets, mask))
        return parts
    finally:
        module.train(was_training)


def score_sequences(model: torch.nn.Module, batch: Batch, channels: dict | None = None) -> Scores:
    """Score `model` on `batch` in chunks of CHUNK sequences; `channels` ({name: slice of the
    output channels}) adds each group's cost and bit errors, scored on its channels alone (the
    group costs add up to the total)."""
    groups = {"": slice(None), **(channels or {})}

    def by_group(logits, targets, mask):
        return {
            name: (
                per_sequence_bce_bits(logits[..., part], targets[..., part], mask).cpu(),
                per_sequence_bit_errors(logits[..., part], targets[..., part], mask).cpu(),
            )
            for name, part in groups.items()
        }

    parts = score_chunks(model, model, batch, by_group)
    joined = {
        name: (torch.cat([p[name][0] for p in parts]), torch.cat([p[name][1] for p in parts]))
        for name in parts[0]
    }
    total = joined.pop("")
    return Scores(total[0], total[1], joined)


def score(model: torch.nn.Module, batch: Batch) -> tuple[float, float]:
    """(cost in bits per sequence, bit errors per sequence) of `model` on `batch`."""
    scores = score_sequences(model, batch)
    return float(scores.cost_bits.mean()), float(scores.bit_errors.mean())


def eval_points(sweeps: dict) -> list[dict]:
    """The points of a profile's `eval` block, in order: each value of each axis alone
    ({"length": 50}), then each `joint` point ({"length": 20, "repeats": 10})."""
    points = [
        {axis: int(value)} for axis, values in sweeps.items() if axis != JOINT for value in values
    ]
    return points + [
        {axis: int(value) for axis, value in joint.items()} for joint in sweeps.get(JOINT) or []
    ]


def point_name(sizes: dict) -> str:
    """'length=20,repeats=10': the evals table's key for a point."""
    return ",".join(f"{axis}={value}" for axis, value in sizes.items())


def sweep_set(task_name: str, task_params: dict, task: Task, sizes: dict, size: int) -> Batch:
    """The fixed batch for one generalization point: the axes in `sizes` set, the others drawn
    from the training distribution."""
    return task.sample(
        size, fixed_generator(task_name, task_params, f"{point_name(sizes)}:{size}"), **sizes
    )


def generalization(
    model, task_name: str, task_params: dict, task: Task, sweeps: dict, size: int
) -> list[dict]:
    """Score `model` at every point of `sweeps` (see eval_points): rows for the evals table.
    A row records the vectors the point needs stored (`memory_needed`) and whether that is more
    than the model's memory holds (`beyond_memory`; None for models without one)."""
    rows = []
    for sizes in eval_points(sweeps):
        scores = score_sequences(
            model, sweep_set(task_name, task_params, task, sizes, size), task.channels
        )
        needed, capacity = task.memory_needed(**sizes), model.memory_size
        beyond = None if needed is None or capacity is None else needed > capacity
        single = len(sizes) == 1
        rows.append(
            {
                "point": point_name(sizes),
                "axis": ",".join(sizes),
                "value": next(iter(sizes.values())) if single else None,
                "cost_bits": float(scores.cost_bits.mean()),
                "bit_errors": float(scores.bit_errors.mean()),
                "n": size,
                "memory_needed": needed,
                "beyond_memory": beyond,
                "channels": {
                    name: {"cost_bits": float(c.mean()), "bit_errors": float(e.mean())}
                    for name, (c, e) in scores.channels.items()
                }
                or None,
            }
        )
    return rows


@torch.no_grad()
def trace(model, task_name: str, task_params: dict, task: Task, at: dict | None = None) -> dict:
    """One fixed sequence at the top of the training range (each axis at `task.max_<axis>` when
    the task has it; the axes in `at` set as given), with the model's output and, for memory
    models, its weightings over time: nested lists for `Store.finish_run(trace=...)`."""
    size = {axis: task.max_size(axis) for axis in task.axes if task.max_size(axis) is not None}
    # the training-range trace keeps its sequence
    purpose = "trace" if not at else f"trace:{point_name(at)}"
    batch = task.sample(
        1, fixed_generator(task_name, task_params, purpose), **{**size, **(at or {})}
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = batch.inputs.to(device)
    result = {"read_weights": None, "write_weights": None}
    if model.has_memory:
        logits, weights = model(inputs, trace=True)
        result = {
            name: weights[name][:, 0].cpu().tolist() for name in ("read_weights", "write_weights")
        }
    else:
        logits = model(inputs)
    model.train(was_training)
    return {
        "input": batch.inputs[:, 0].tolist(),
        "target": batch.targets[:, 0].tolist(),
        "mask": batch.mask[:, 0].tolist(),
        "output": torch.sigmoid(logits[:, 0]).cpu().tolist(),
        **result,
    }
