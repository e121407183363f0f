"""FusedModel: what the NTM and the DNC share around their native kernels (models.ntm_kernel,
models.dnc_kernel), each of which runs a whole sequence forward and backward as one compiled call.

Two paths, one math:
- on a CPU, training and evaluation run the model's kernel over the whole sequence (`native`),
  and K seeds of one architecture run through it at once (`seeds_forward`);
- the readable reference, `step` (plain autograd through models.ntm_memory or
  models.dnc_memory), runs where the kernel does not: on a GPU (where `compile_step` compiles it
  in chunks and batched seeds take torch.func.vmap), for traces, and with `fused` off, as the
  reference every kernel test checks outputs and gradients against (tests/test_ntm_kernel.py,
  tests/test_dnc_kernel.py).

A kernel takes its operands in one convention: `Operands(state, weights)`, where `weights` are the
two linear layers, the controller's [G, I + recurrent inputs] and the interface's (the NTM's
heads, the DNC's interface vector) with its rows in the kernel's blocked order; with K seeds
(layout.seeds = K) every weight has a leading K axis and the state's rows are seed-major.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import torch
from torch.func import functional_call

from ntm_bench.models.base import COMPILE_CHUNK, SequenceModel
from ntm_bench.models.fused_cell import seeds_logits


class Weights(NamedTuple):
    """The two linear layers as a kernel takes them ([K, ...] each with K seeds)."""

    controller: torch.Tensor  # [G, I + recurrent inputs], G = 4C (LSTM) or C
    controller_bias: torch.Tensor  # [G]
    interface: torch.Tensor  # [P, C], rows in the kernel's blocked order
    interface_bias: torch.Tensor  # [P]


class Operands(NamedTuple):
    """What a sequence starts from, besides its inputs."""

    state: NamedTuple  # the model's recurrent state (NTMState, DNCState), [K*B, ...] each
    weights: Weights


def flatten(operands: Operands) -> tuple:
    """The tensors of `operands`, each NamedTuple in its own field order (a Function's inputs)."""
    return (*operands.state, *operands.weights)


def take(kind: type, rest: Iterator[torch.Tensor]):
    """The next len(kind._fields) tensors of `rest` as a `kind`: the inverse of flattening."""
    return kind._make(itertools.islice(rest, len(kind._fields)))


CHILD = "NTM_BENCH_COMPILING_KERNELS"  # set in the child that compiles them


@functools.cache
def kernels_on_disk(model: str) -> None:
    """Make sure this process runs `model`'s kernel (models/<model>_kernel.py) from numba's disk
    cache, compiling it first in child processes where the cache is cold.

    Why: numba's code for a kernel compiled in this process is not the code it caches. Compiled
    cold, a kernel's helper functions are optimized together with their callers (inlined, then
    vectorized and contracted across the boundary); loaded from the cache, each is the separately
    compiled function. The two round differently in the last bits (the DNC's golden curves
    differed at 1e-7), so a run that compiled its kernel would not reproduce bit for bit in the
    runs after it. Compiling in children and loading here gives every process the same code.
    Two children, at once (models/first_use.py): one compiles the forward, the other the
    backward, so on two cores the first use waits for the longer of the two (18 s of the NTM's
    33 s here), not their sum. The float32 training path is compiled there; float64, for the
    tests, compiles where it is first used. A marker beside the cache, named by the kernel's
    source digest and numba's version, says the children ran for this code. Called by each
    kernel's forward before numba dispatches."""
    import numba

    folder = Path(__file__).parent
    source = (folder / f"{model}_kernel.py").read_bytes()
    digest = hashlib.sha256(numba.__version__.encode() + source).hexdigest()[:16]
    marker = folder / "__pycache__" / f"{model}_kernel-{digest}.compiled"
    if marker.exists() or os.environ.get(CHILD):
        return
    compile_in_children(model, {**os.environ, CHILD: "1"})
    try:
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
    except OSError:
        # a package folder this user may not write (a system-wide install): numba caches in its
        # user-wide folder instead, and without the marker each process reruns the children,
        # which then find that cache and only load
        pass


def compile_in_children(model: str, env: dict) -> None:
    """Run models/first_use.py's compile_part for `model`'s forward and for its backward in two
    child processes at once, with environment `env`; CalledProcessError if either fails."""
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from ntm_bench.models.first_use import compile_part\n"
                f"compile_part({model!r}, {part!r})",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for part in ("forward", "backward")
    ]
    for child in children:
        _, err = child.communicate()
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, child.args, stderr=err)


class FusedModel(SequenceModel):
    """A memory model with a native kernel (the NTM, the DNC). A subclass gives `native` (its
    kernel: (layout, inputs [T, B, I], operands) -> (hs [T, B, C], reads [T, B, R*M])),
    `layout` (a NamedTuple with `inputs` I and `seeds` K), `fused_operands` and an output layer
    `out` on [h_t, r_t]; its `step` stays the readable reference (see the module docstring)."""

    has_seeds_pass = True  # seeds_forward: K seeds through one kernel call (on a CPU)
    # Whether a CPU forward runs the kernel; False: the plain `step` loop, the reference the
    # kernel is tested against.
    fused = True
    native: Callable  # the kernel (a staticmethod of the subclass)

    def fused_operands(self, batch: int, tensors: dict | None = None, seeds: int = 1) -> Operands:
        """The initial state [seeds * batch, ...] and the weights the sequence starts from: this
        model's, or K = `seeds` seeds' from `tensors` (every parameter and buffer name -> a
        stacked [K, ...] tensor, or an unstacked one shared by all seeds), rows seed-major."""
        raise NotImplementedError

    def runs_native(self, inputs: torch.Tensor) -> bool:
        """Whether `inputs` go through the kernel: on a CPU, with `fused` on, and not under a
        torch.func transform (vmap over stacked parameters, grad), whose wrapped tensors have no
        data for a kernel to read: those run the reference step, which they can trace."""
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor
        return (
            self.fused
            and inputs.device.type == "cpu"
            and not wrapped(inputs)
            and not wrapped(self.out.weight)
        )

    def compile_step(self, chunk: int = COMPILE_CHUNK) -> bool:
        """Compile the reference step in chunks (SequenceModel.compile_step) where it is what
        runs, on a GPU or with `fused` off; False on a CPU, where the native kernel runs and
        there is nothing to compile."""
        if self.fused and next(self.parameters()).device.type == "cpu":
            return False
        return super().compile_step(chunk)

    def fused_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs [T, B, I] -> logits [T, B, O] by the kernel."""
        hs, reads = self.native(self.layout, inputs, self.fused_operands(inputs.shape[1]))
        return self.out(torch.cat([hs, reads], dim=-1))

    def seeds_forward(self, tensors: dict, inputs: torch.Tensor) -> torch.Tensor:
        """K seeds of this architecture in one kernel pass: `tensors` as fused_operands takes them,
        inputs [K, T, B, I] -> logits [K, T, B, O]. The memory operations see the K*B sequences as
        one batch; only the linear layers are per seed. Off the CPU, each seed in turn through
        the reference step."""
        K, B = inputs.shape[0], inputs.shape[2]
        if not self.runs_native(inputs):
            own = dict(self.named_parameters()) | dict(self.named_buffers())
            return torch.stack(
                [
                    functional_call(
                        self,
                        {n: t[k] if t.dim() > own[n].dim() else t for n, t in tensors.items()},
                        (inputs[k],),
                    )
                    for k in range(K)
                ]
            )
        hs, reads = self.native(
            self.layout._replace(seeds=K),
            inputs.transpose(0, 1).flatten(1, 2),
            self.fused_operands(B, tensors, K),
        )
        return seeds_logits(hs, reads, K, tensors["out.weight"], tensors["out.bias"])
