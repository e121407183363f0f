"""The one seed derivation: a 62-bit seed from the SHA-256 of a text, so a seed depends only on
what the text names and never on Python's hash randomization or a global RNG.

    derived_seed(seed, purpose)   a run's streams: "init" (model parameters) and "data" (batches)
    fixed_generator(task, params, purpose)   evaluation sets: the task, its parameters and the
                                  point, never the run's seed, so every model is scored alike

and the one way a model is built from a seed (`seeded`): training, the speed suite and versus;
a run's model and task from its spec (`build_seeded`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, TypeVar

import torch

from ntm_bench.benchmarks.harness.plugins import build_model, build_task

Built = TypeVar("Built")

MASK = (1 << 62) - 1


def text_seed(text: str) -> int:
    """The first 8 bytes of SHA-256(text), little-endian, masked to 62 bits."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & MASK


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose ("init", "data") derived from the run seed."""
    return text_seed(f"{seed}:{purpose}")


def fixed_generator(task_name: str, task_params: dict, purpose: str) -> torch.Generator:
    """A generator whose seed depends only on the task, its parameters and `purpose`."""
    return torch.Generator().manual_seed(
        text_seed(json.dumps([task_name, task_params, purpose], sort_keys=True))
    )


def seeded(seed: int, make: Callable[[], Built]) -> Built:
    """`make()` with torch's global CPU RNG seeded to `seed`, and the caller's RNG state put back
    afterwards: a model's initial parameters depend on its seed alone, not on what ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def build_seeded(spec, device: str = "cpu"):
    """(task, model) of a plan.RunSpec, the model initialized from the run's init seed: how
    training, kept weights (benchmarks.harness.trained) and the cost of a profile build a run."""
    task = build_task(spec.task, **spec.task_params)
    model = seeded(
        derived_seed(spec.seed, "init"),
        lambda: build_model(spec.model, task.input_size, task.output_size, **spec.model_params),
    )
    return task, model.to(device)
