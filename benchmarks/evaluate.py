"""Fixed evaluation sets and generalization sweeps.

Every evaluation set is drawn from a generator seeded by the task's name, the task's parameters
and the point evaluated (never by the run's seed), so every model and seed is scored on
identical sequences: a model-to-model gap is not a different draw of the data.
"""

from __future__ import annotations

import hashlib
import json

import torch

from tasks.base import Batch, Task, per_sequence_bce_bits, per_sequence_bit_errors

VALIDATION = "validation"
CHUNK = 256  # sequences scored per forward pass, to bound memory on long sequences


def fixed_generator(task_name: str, task_params: dict, purpose: str) -> torch.Generator:
    """A generator whose seed depends only on the task, its parameters and `purpose`."""
    text = json.dumps([task_name, task_params, purpose], sort_keys=True)
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 62) - 1)
    return torch.Generator().manual_seed(seed)


def validation_set(task_name: str, task_params: dict, task: Task, size: int) -> Batch:
    """The fixed validation batch: `size` sequences from the training distribution."""
    return task.sample(size, fixed_generator(task_name, task_params, f"{VALIDATION}:{size}"))


@torch.no_grad()
def score(model: torch.nn.Module, batch: Batch) -> tuple[float, float]:
    """(cost in bits per sequence, bit errors per sequence) of `model` on `batch`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    costs, errors = [], []
    for start in range(0, batch.inputs.shape[1], CHUNK):
        inputs, targets, mask = (t[:, start: start + CHUNK].to(device) for t in batch)
        logits = model(inputs)
        costs.append(per_sequence_bce_bits(logits, targets, mask).cpu())
        errors.append(per_sequence_bit_errors(logits, targets, mask).cpu())
    model.train(was_training)
    return float(torch.cat(costs).mean()), float(torch.cat(errors).mean())


def sweep_set(task_name: str, task_params: dict, task: Task, axis: str, value: int, size: int) -> Batch:
    """The fixed batch for one generalization point: `axis` set to `value`, other axes drawn."""
    return task.sample(size, fixed_generator(task_name, task_params, f"{axis}={value}:{size}"), **{axis: value})


def generalization(model, task_name: str, task_params: dict, task: Task, sweeps: dict, size: int) -> list[dict]:
    """Score `model` at every point of `sweeps` ({axis: [values]}): rows for the evals table."""
    rows = []
    for axis, values in sweeps.items():
        for value in values:
            cost, errors = score(model, sweep_set(task_name, task_params, task, axis, value, size))
            rows.append({"axis": axis, "value": int(value), "cost_bits": cost, "bit_errors": errors, "n": size})
    return rows


@torch.no_grad()
def trace(model, task_name: str, task_params: dict, task: Task) -> dict:
    """One fixed sequence at the top of the training range (each axis at `task.max_<axis>` when
    the task has it), with the model's output and, for memory models, its weightings over time:
    nested lists for `Store.finish_run(trace=...)`."""
    size = {axis: getattr(task, f"max_{axis}") for axis in task.axes if hasattr(task, f"max_{axis}")}
    batch = task.sample(1, fixed_generator(task_name, task_params, "trace"), **size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = batch.inputs.to(device)
    result = {"read_weights": None, "write_weights": None}
    if getattr(model, "has_memory", False):
        logits, weights = model(inputs, trace=True)
        result = {name: weights[name][:, 0].cpu().tolist() for name in ("read_weights", "write_weights")}
    else:
        logits = model(inputs)
    model.train(was_training)
    return {"input": batch.inputs[:, 0].tolist(), "target": batch.targets[:, 0].tolist(),
            "mask": batch.mask[:, 0].tolist(), "output": torch.sigmoid(logits[:, 0]).cpu().tolist(), **result}
