"""The one seed derivation: a 62-bit seed from the SHA-256 of a text, so a seed depends only on
what the text names and never on Python's hash randomization or a global RNG.

    derived_seed(seed, purpose)   a run's streams: "init" (model parameters) and "data" (batches)
    fixed_generator(task, params, purpose)   evaluation sets: the task, its parameters and the
                                  point, never the run's seed, so every model is scored alike

and the one way a model is built from a seed (`seeded`): training, the speed suite and versus.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, TypeVar

import torch

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
