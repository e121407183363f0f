"""What the speed benchmark (benchmarks/speed_suite/bench.py) runs: its profiles (batch sizes,
modes, timing budget, sweeps, seed counts, model sizes), the configurations a profile expands to,
the models built for them (the registry's, and the torch.nn.LSTM reference) and the fixed copy
batches they run on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from ntm_bench.benchmarks.harness import constructors
from ntm_bench.benchmarks.harness.seeding import seeded
from ntm_bench.models import MODELS
from ntm_bench.tasks.base import Batch
from ntm_bench.tasks.copy import Copy

WIDTH = 8  # copy's bit width: input 9 (with the delimiter), output 8
REFERENCE = "lstm_ref"
REFERENCE_LABEL = "torch.nn.LSTM(9, 256, 1 layer) + Linear(256, 8), zero initial state"
SWEEP_MODELS = ("ntm", "dnc")  # the memory models whose memory size and sequence length are swept
PAPER_SIZES = {
    "controller_size": 100,
    "memory_size": 128,
    "memory_width": 20,
    "read_heads": 1,
    "write_heads": 1,
    "hidden_size": 256,
    "num_layers": 3,
}  # each model takes the ones its constructor accepts
SMOKE_SIZES = {
    "controller_size": 8,
    "memory_size": 8,
    "memory_width": 4,
    "read_heads": 1,
    "write_heads": 1,
    "hidden_size": 8,
    "num_layers": 1,
}


@dataclass(frozen=True)
class Timing:
    """How a configuration is timed (timing.measure): a first iteration and `burn_in` more
    untimed, then `rounds` rounds in which it and the reference take turns of at least `round_s`
    seconds (and two iterations) each."""

    burn_in: int = 2  # untimed iterations after the first (which compiles, where it does)
    rounds: int = 5  # rounds of turns with the reference
    round_s: float = 0.4  # seconds of each contender's turn (at least two iterations)

    def __post_init__(self):
        # a nan or inf turn, or a negative count, would time forever or not at all
        for name, low in (("burn_in", 0), ("rounds", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"timing: {name} must be a whole number >= {low}, got {value!r}")
        value = self.round_s
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"timing: round_s must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class BenchProfile:
    name: str
    batches: tuple[int, ...]  # main-grid batch sizes
    modes: tuple[str, ...]  # "forward" and/or "train"
    timing: Timing = Timing()
    steps: int = 41  # main-grid time steps: copy length 20, delimiter, 20 outputs
    compile: bool = True  # "+compile" variants where compile_step() returns True
    memory_sizes: tuple[int, ...] = ()  # memory sweep, at `steps`
    seq_lens: tuple[int, ...] = ()  # length sweep in time steps, at sizes["memory_size"]
    sweep_batch: int = 16
    sizes: dict = field(default_factory=lambda: dict(PAPER_SIZES))
    seeds: tuple[int, ...] = ()  # seed counts trained as one batched model (main grid, train mode,
    # models with supports_vmap); the target is 8

    def __post_init__(self):
        if (
            not set(self.modes) <= {"forward", "train"}
            or min(self.batches + (self.sweep_batch,)) < 1
        ):
            raise ValueError(
                f"speed profile {self.name!r}: modes must be forward/train and batches >= 1"
            )
        if min(self.seeds, default=2) < 2:  # one seed is the main grid's own row
            raise ValueError(f"speed profile {self.name!r}: batched seed counts must be >= 2")
        if min((self.steps, *self.seq_lens)) < 3:
            raise ValueError(f"speed profile {self.name!r}: a copy sequence needs at least 3 steps")
        if min(self.memory_sizes, default=1) < 1:
            raise ValueError(f"speed profile {self.name!r}: memory sizes must be >= 1")
        whole = (*self.batches, self.sweep_batch, *self.seeds, self.steps, *self.seq_lens)
        if any(isinstance(n, bool) or not isinstance(n, int) for n in whole + self.memory_sizes):
            raise ValueError(f"speed profile {self.name!r}: sizes and counts must be whole numbers")


PROFILES = {
    "full": BenchProfile(
        "full",
        (1, 16, 256),
        ("forward", "train"),
        memory_sizes=(128, 512, 2048, 8192),
        seq_lens=(20, 100, 500, 1000),
        seeds=(8,),
    ),
    "quick": BenchProfile(
        "quick",
        (1, 16),
        ("train",),
        Timing(burn_in=1, rounds=3, round_s=0.2),
        seeds=(8,),
    ),
    # for tests: every code path (both modes, compile variants, both sweeps, batched seeds) at toy
    # sizes
    "smoke": BenchProfile(
        "smoke",
        (1, 2),
        ("forward", "train"),
        Timing(burn_in=0, rounds=1, round_s=0.0),
        steps=5,
        memory_sizes=(8, 16),
        seq_lens=(3, 7),
        sweep_batch=2,
        sizes=dict(SMOKE_SIZES),
        seeds=(2,),
    ),
}


class Config(NamedTuple):
    model: str
    compiled: bool
    mode: str
    batch: int
    memory_size: int | None  # None for models without a memory
    steps: int
    # > 1: that many models trained as one (benchmarks/harness/batched.py's SeedStack)
    seeds: int = 1

    @property
    def name(self) -> str:
        model = self.model + ("+compile" if self.compiled else "")
        memory = f"/n{self.memory_size}" if self.memory_size is not None else ""
        # seeds == 1 keeps the names of earlier benches
        seeds = f"/s{self.seeds}" if self.seeds > 1 else ""
        return f"{model}/{self.mode}/b{self.batch}{memory}/t{self.steps}{seeds}"


class ReferenceLSTM(nn.Module):
    """The yardstick: torch.nn.LSTM(9, hidden, 1 layer) from a zero state, then
    Linear(hidden, 8)."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.rnn = nn.LSTM(WIDTH + 1, hidden)
        self.out = nn.Linear(hidden, WIDTH)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(inputs)[0])


# -- models and data ---------------------------------------------------------------------------


def model_params(name: str, sizes: dict, memory_size: int | None) -> dict:
    """The sizes that model `name` accepts, with the memory size of the configuration."""
    params = {k: v for k, v in sizes.items() if k in constructors.keywords(MODELS[name])}
    if memory_size is not None:
        params["memory_size"] = memory_size
    return params


def build(name: str, params: dict, device: torch.device, seed: int) -> nn.Module:
    """A model (REFERENCE or a registry name) on `device`, initialized from `seed` without
    touching the caller's global RNG state."""
    model = seeded(
        seed,
        lambda: ReferenceLSTM() if name == REFERENCE else MODELS[name](WIDTH + 1, WIDTH, **params),
    )
    return model.to(device)


def copy_batch(batch: int, steps: int, device: torch.device, seed: int) -> Batch:
    """A fixed copy batch of exactly `steps` time steps: copy length (steps - 1) // 2, and one
    unscored zero step at the end when `steps` is even."""
    length = (steps - 1) // 2
    data = Copy(WIDTH, length, length).sample(
        batch, torch.Generator().manual_seed(seed), length=length
    )
    pad = steps - data.inputs.shape[0]
    return Batch(*(torch.cat([t, t.new_zeros(pad, *t.shape[1:])]).to(device) for t in data))


def plan(models: list[str], profile: BenchProfile) -> list[Config]:
    """Every configuration to measure, main grid first, without duplicates. A batched-seeds
    configuration comes after the one-seed configuration of its model, batch and compile flag,
    in the same (mode, batch, steps) group: run_bench divides its step time by that one's."""
    default_memory = profile.sizes.get("memory_size")

    def memory(name, size=None):
        size = default_memory if size is None else size
        return size if "memory_size" in constructors.keywords(MODELS[name]) else None

    # compile_step() only wraps the step here: compilation happens at the first call
    compiles = {
        name: profile.compile
        and build(
            name, model_params(name, profile.sizes, None), torch.device("cpu"), 0
        ).compile_step()
        for name in models
    }
    configs = []
    for mode in profile.modes:
        for batch in profile.batches:
            for name in models:
                configs.append(Config(name, False, mode, batch, memory(name), profile.steps))
                if mode == "train" and compiles[name]:
                    configs.append(Config(name, True, mode, batch, memory(name), profile.steps))
                if mode == "train" and MODELS[name].supports_vmap:
                    configs += [
                        Config(name, False, mode, batch, memory(name), profile.steps, k)
                        for k in profile.seeds
                    ]
                    if compiles[name] and MODELS[name].has_seeds_pass:  # a compiled K-seed pass
                        configs += [
                            Config(name, True, mode, batch, memory(name), profile.steps, k)
                            for k in profile.seeds
                        ]
    for name in (m for m in models if m in SWEEP_MODELS):
        configs += [
            Config(name, False, "train", profile.sweep_batch, memory(name, n), profile.steps)
            for n in profile.memory_sizes
        ]
        configs += [
            Config(name, False, "train", profile.sweep_batch, memory(name), t)
            for t in profile.seq_lens
        ]
    return list(dict.fromkeys(configs))
