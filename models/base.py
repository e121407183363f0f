"""The SequenceModel contract shared by every model in the registry.

    forward(inputs [T, B, I]) -> logits [T, B, O]

Fresh state on every call (the initial state is a learned parameter, never carried over), and a
time loop written so that `torch.func.vmap` over stacked parameters works: no in-place updates
of tensors that need grad, no `.item()`, no Python branching on data. Memory models also accept
`trace=True` and then return `(logits, trace)` with the per-step read and write weightings,
each [T, B, heads, N], for the memory-access figures.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn

COMPILE_CHUNK = 8  # time steps per compiled call: see SequenceModel.compile_step


class CompiledSteps(NamedTuple):
    """What compile_step installs and `unroll` runs."""

    # `SequenceModel.steps`, compiled: (inputs [chunk, B, I], state) -> (logits, state)
    steps: Callable
    chunk: int  # time steps per call


class SequenceModel(nn.Module):
    """Base class: `input_size` and `output_size` come from the task, the rest from the profile.

    A subclass implements `forward(inputs [T, B, I]) -> logits [T, B, O]`; everything else the
    harness uses is declared here with a default, so a new model overrides only what it has:

    - `has_memory`: True for models with an external memory; their `forward(inputs, trace=True)`
      returns `(logits, {"read_weights": [T, B, R, N], "write_weights": [T, B, W, N]})`, drawn as
      the memory-access pictures.
    - `memory_size`: its locations; evaluation points that need more are marked beyond it.
    - `supports_vmap`: the time loop is safe under torch.func.vmap over stacked parameters, so the
      seeds of a config may train as one batched model (train.batch_seeds).
    - `has_seeds_pass`: the model has its own K-seed pass, `seeds_forward`, used for batched seeds
      instead of vmap (the fused NTM and DNC).
    - `step(x, state) -> (logits, state)`: one time step; a model with one whose forward runs
      `self.unroll(inputs, state)` gets `compile_step` and the chunked, compiled loop for free
      (the planner refuses, under train.compile, a forward that loops over `step` itself).
    - `compile_step()`: compile the time loop (train.compile); False where there is nothing to
      compile.
    - `later_params`: keywords added after runs were published; at their default they stay out
      of a run's config (and so of its run_id), so those runs keep theirs.
    """

    has_memory = False
    memory_size: int | None = None  # locations of an external memory (None: the model has none);
    # evaluations mark the points that need more as beyond it
    supports_vmap = (
        False  # True where torch.func.vmap over stacked parameters works (seed batching)
    )
    has_seeds_pass = False  # True where seeds_forward runs K seeds in one pass of the model's own
    later_params: tuple[str, ...] = ()
    compiled_steps: CompiledSteps | None = None  # set by compile_step()

    def step(self, x: torch.Tensor, state):
        """One time step: x [B, I] and the recurrent state -> (logits [B, O], next state).
        Models without a step loop (the LSTM runs one torch.nn.LSTM call) leave it undefined."""
        raise NotImplementedError(f"{type(self).__name__} has no step loop")

    def has_step(self) -> bool:
        """Whether the model defines `step` (so its time loop can be compiled in chunks)."""
        return type(self).step is not SequenceModel.step

    def seeds_forward(self, tensors: dict, inputs: torch.Tensor) -> torch.Tensor:
        """K seeds in one pass (models with `has_seeds_pass`): `tensors` maps every parameter and
        buffer name to its per-seed stack [K, ...] (or an unstacked shared value), inputs
        [K, T, B, I] -> logits [K, T, B, O]."""
        raise NotImplementedError(
            f"{type(self).__name__} has no K-seed pass (has_seeds_pass is False)"
        )

    def __init__(self, input_size: int, output_size: int):
        super().__init__()
        if input_size < 1 or output_size < 1:
            raise ValueError(
                f"input and output sizes must be positive, got {input_size}, {output_size}"
            )
        self.input_size, self.output_size = input_size, output_size

    def steps(self, inputs: torch.Tensor, state):
        """`self.step` over every time step of inputs [K, B, I]: (logits [K, B, O], last state).
        The unit that compile_step() compiles."""
        outputs = []
        for x in inputs.unbind(0):
            y, state = self.step(x, state)
            outputs.append(y)
        return torch.stack(outputs), state

    def compile_step(self, chunk: int = COMPILE_CHUNK) -> bool:
        """Compile `steps` over `chunk` time steps with torch.compile, for models whose time loop
        calls `self.step`. Returns False where there is nothing to compile (the LSTM runs as one
        fused torch.nn.LSTM call).

        Why a chunk: op overhead dominates small recurrent models, and each call of a compiled
        region costs ~0.5 ms of fixed overhead (guards, the autograd wrappers of forward and
        backward) on the 2-core CPU, more than the NTM step's own arithmetic. Compiling one step
        pays that every step; compiling the whole unrolled sequence pays it once but takes ~5
        minutes and recompiles for every length. A chunk of 8 steps divides the overhead by 8,
        compiles in ~1.5 minutes, and serves every sequence length with one graph (`unroll`)."""
        if not self.has_step():
            return False
        self.compiled_steps = CompiledSteps(
            torch.compile(self.steps, dynamic=False), positive("chunk", chunk)
        )
        return True

    def unroll(self, inputs: torch.Tensor, state, traced=None):
        """Run `self.step` over the time steps of inputs [T, B, I] from `state`; returns
        (logits [T, B, O], [traced(state) after each step] or None).

        With a compiled chunk (compile_step) and grad enabled, the inputs are padded at the end
        with zero steps to a multiple of the chunk and run chunk by chunk; the padding's logits
        are dropped. The models are causal, so the padding changes no kept output and no
        gradient, and one compiled graph serves every length. Evaluation (no grad) and traces
        run eager, so their many batch sizes and lengths cost no recompilation."""
        if self.compiled_steps is not None and torch.is_grad_enabled() and traced is None:
            compiled, chunk = self.compiled_steps
            outputs = []
            for chunk_inputs in pad_steps(inputs, chunk).split(chunk):
                logits, state = compiled(chunk_inputs, state)
                outputs.append(logits)
            return torch.cat(outputs)[: inputs.shape[0]], None
        outputs, trace = [], [] if traced is not None else None
        for x in inputs:
            y, state = self.step(x, state)
            outputs.append(y)
            if traced is not None:
                trace.append(traced(state))
        return torch.stack(outputs), trace

    def n_params(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def positive(name: str, value: int, minimum: int = 1) -> int:
    """Return `value` if it is an integer >= minimum, else raise ValueError naming `name`."""
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def pad_steps(inputs: torch.Tensor, chunk: int) -> torch.Tensor:
    """inputs [T, B, I] with zero time steps appended up to a multiple of `chunk` (compiled
    chunks: the models are causal, so the padding changes no output before it)."""
    pad = -inputs.shape[0] % chunk
    return torch.cat([inputs, inputs.new_zeros(pad, *inputs.shape[1:])]) if pad else inputs


def expand_initial(param: torch.Tensor, batch: int) -> torch.Tensor:
    """A learned initial-state parameter [...] broadcast to [batch, ...] without copying."""
    return param.unsqueeze(0).expand(batch, *param.shape)
