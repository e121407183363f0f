"""The SequenceModel contract shared by every model in the registry.

    forward(inputs [T, B, I]) -> logits [T, B, O]

Fresh state on every call (the initial state is a learned parameter, never carried over), and a
time loop written so that `torch.func.vmap` over stacked parameters works: no in-place updates
of tensors that need grad, no `.item()`, no Python branching on data. Memory models also accept
`trace=True` and then return `(logits, trace)` with the per-step read and write weightings,
each [T, B, heads, N], for the memory-access figures.
"""

from __future__ import annotations

import torch
from torch import nn


class SequenceModel(nn.Module):
    """Base class: `input_size` and `output_size` come from the task, the rest from the profile."""

    has_memory = False
    supports_vmap = False  # True where torch.func.vmap over stacked parameters works (seed batching)
    compiled_step = None  # set by compile_step() on models with a per-step function

    def __init__(self, input_size: int, output_size: int):
        super().__init__()
        if input_size < 1 or output_size < 1:
            raise ValueError(f"input and output sizes must be positive, got {input_size}, {output_size}")
        self.input_size, self.output_size = input_size, output_size

    def compile_step(self) -> bool:
        """Compile the per-step function with torch.compile, for models whose time loop calls
        `self.step` (op overhead dominates small recurrent models; compiling the step, not the
        unrolled sequence, keeps compile time to seconds). Returns False where there is nothing
        to compile (e.g. the LSTM, which runs as one fused torch.nn.LSTM call)."""
        if not hasattr(self, "step"):
            return False
        self.compiled_step = torch.compile(self.step, dynamic=False)
        return True

    def unroll(self, inputs: torch.Tensor, state, traced=None):
        """Run `self.step` over the time steps of inputs [T, B, I] from `state`; returns
        (logits [T, B, O], [traced(state) after each step] or None). The compiled step serves
        training (forward + backward); evaluation runs eager, so its many batch sizes cost no
        recompilation."""
        step = self.compiled_step if self.compiled_step is not None and torch.is_grad_enabled() else self.step
        outputs, trace = [], [] if traced is not None else None
        for x in inputs:
            y, state = step(x, state)
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


def expand_initial(param: torch.Tensor, batch: int) -> torch.Tensor:
    """A learned initial-state parameter [...] broadcast to [batch, ...] without copying."""
    return param.unsqueeze(0).expand(batch, *param.shape)
