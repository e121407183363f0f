"""FusedModel: the SequenceModel side of the fused-sequence engine (models.fused_engine), what the
fused NTM and DNC share beyond their step math: the switch between the fused sequence and the
reference step loop, the compiled chunks, and the K-seed pass. A model here gives only its
`fused_steps`, `layout` and `fused_operands` (where its sequence starts, from its parameters).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from models.base import COMPILE_CHUNK, SequenceModel, pad_steps, positive
from models.fused_cell import seeds_logits
from models.fused_engine import Kernels, Operands, Sequence, Steps, compiled_kernels, flatten, run


class FusedModel(SequenceModel):
    """A memory model that trains and evaluates by the engine (the NTM, the DNC). A subclass
    gives `fused_steps`, `layout` (its fused layout: a NamedTuple with `inputs` I and `seeds` K),
    `fused_operands` and an output layer `out` on [h_t, r_t]; its `step` stays the readable
    reference, run where `fused` is off and for traces."""

    has_seeds_pass = True  # seeds_forward: K seeds through one fused sequence
    # Whether forward runs the fused sequence; False: the plain `step` loop, the reference the
    # fused sequence is tested against. Batched seeds always take the K-seed pass.
    fused = True
    kernels = Kernels()  # eager, a step per chunk; compile_step swaps in compiled chunks
    fused_steps: (
        Steps  # the step math (a class attribute); not `steps`, the step loop of SequenceModel
    )

    def fused_operands(self, batch: int, tensors: dict | None = None, seeds: int = 1) -> Operands:
        """The initial state [seeds * batch, ...], weights and constants the sequence starts from:
        this model's, or K = `seeds` seeds' from `tensors` (every parameter and buffer name -> a
        stacked [K, ...] tensor, or an unstacked one shared by all seeds), rows seed-major."""
        raise NotImplementedError

    def compile_step(self, chunk: int = COMPILE_CHUNK) -> bool:
        """Compile the fused sequence's chunk functions for `chunk` time steps each
        (compiled_kernels). With `fused` off, the step is compiled instead."""
        if not self.fused:
            return super().compile_step(chunk)
        self.kernels = compiled_kernels(self.fused_steps, positive("chunk", chunk))
        return True

    def fused_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs [T, B, I] -> logits [T, B, O] by the fused sequence."""
        return self.out(torch.cat(self.fused_sequence(inputs), dim=-1))

    def fused_sequence(
        self,
        inputs: torch.Tensor,
        operands: Operands | None = None,
        layout: NamedTuple | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Controller outputs [T, B, C] and read vectors [T, B, R*M] of the whole sequence: this
        model's, or with `operands` and `layout` K seeds'. Without grad it runs eager and keeps
        nothing for a backward pass (evaluation: any batch size or length, no recompilation).
        Compiled chunks take inputs padded at the end to a multiple of the chunk (causal, so no
        kept output changes; see SequenceModel.unroll)."""
        layout = layout or self.layout
        operands = operands if operands is not None else self.fused_operands(inputs.shape[1])
        if not torch.is_grad_enabled():
            out = run(self.fused_steps, layout, Kernels(), inputs, operands, save=False)
            return out.hs, out.reads
        padded = pad_steps(inputs, self.kernels.chunk)
        hs, reads = Sequence.apply(
            self.fused_steps, layout, self.kernels, padded, *flatten(operands)
        )[:2]
        return hs[: len(inputs)], reads[: len(inputs)]

    def seeds_forward(self, tensors: dict, inputs: torch.Tensor) -> torch.Tensor:
        """K seeds of this architecture in one fused pass: `tensors` as fused_operands takes them,
        inputs [K, T, B, I] -> logits [K, T, B, O]. The memory operations see the K*B sequences as
        one batch; only the linear layers are per seed (batched matmuls), so this replaces
        torch.func.vmap over the model (benchmarks/batched.py), whose per-op batching costs more.
        Runs this model's kernels: compiled ones after compile_step."""
        K, B = inputs.shape[0], inputs.shape[2]
        hs, reads = self.fused_sequence(
            inputs.transpose(0, 1).flatten(1, 2),
            self.fused_operands(B, tensors, K),
            self.layout._replace(seeds=K),
        )
        return seeds_logits(hs, reads, K, tensors["out.weight"], tensors["out.bias"])
