"""Seeds as a batch dimension: K seeds of one (model, task, config) trained as one batched model.

The K models' parameters are stacked along a new leading dimension (torch.func.stack_module_state)
and the forward pass is `torch.func.vmap` of the ordinary model over that dimension (or the
model's own K-seed pass, `seeds_forward`, where it has one: the fused NTM and DNC), so one set of
tensor ops serves all seeds and the per-op overhead that dominates small recurrent models is paid
once instead of K times. Every seed keeps what it would have alone:

- its own init stream (each model is built by `build_seeded`) and its own data generator, so it
  sees exactly the batches it would see alone (batches of different lengths are padded at the
  end, which changes no scored output: the models are causal);
- its own optimizer arithmetic: Adam and RMSProp are element-wise, and the gradient-norm clip is
  computed per seed; the loss is the sum of the seeds' losses, whose gradient with respect to
  seed k's parameters is seed k's gradient;
- its own curve, convergence step and divergence: a seed that stops (converged with
  `stop_on_converge`, or diverged) has its parameters snapshotted and its curve closed, while
  the others go on. That bookkeeping, with the log window, validation, checkpoints and Ctrl-C,
  is the cadence one run has too (benchmarks/harness/cadence.py), and the loop is one run's
  (benchmarks/harness/train.py train); this module adds the K-seed step, as the Trainee Seeds.
Results match training each seed alone to float rounding (the tests check 1e-5), not bit for bit.
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call, stack_module_state, vmap

from ntm_bench.benchmarks.harness.cadence import StepScores
from ntm_bench.benchmarks.harness.config import TrainConfig
from ntm_bench.benchmarks.harness.evaluate import score_chunks
from ntm_bench.benchmarks.harness.train import make_optimizer
from ntm_bench.tasks.base import Batch, Task, per_sequence_bce_bits, per_sequence_bit_errors


def stack_batches(batches: list[Batch]) -> Batch:
    """K batches -> one Batch with a leading K dimension, time padded to the longest."""
    steps = max(b.inputs.shape[0] for b in batches)

    def pad(t):
        return torch.nn.functional.pad(t, (0, 0) * (t.dim() - 1) + (0, steps - t.shape[0]))

    return Batch(*(torch.stack([pad(getattr(b, f)) for b in batches]) for f in Batch._fields))


class SeedStack:
    """K copies of one architecture as stacked parameters, with one forward pass for all."""

    def __init__(self, models: list[torch.nn.Module]):
        self.template = copy.deepcopy(models[0])
        self.params, stacked = stack_module_state(models)
        # Buffers equal in every seed (index tables, a constant initial memory) stay unbatched:
        # vmap then gathers with a plain index instead of a batched one, which costs far more.
        self.shared = {n: b[0] for n, b in stacked.items() if bool((b == b[:1]).all())}
        self.buffers = {n: b for n, b in stacked.items() if n not in self.shared}
        self.k = len(models)

    @property
    def own_pass(self) -> bool:
        """Whether the model has its own K-seed pass (`seeds_forward`: the fused NTM and DNC)."""
        return self.template.has_seeds_pass

    def compile_step(self) -> bool:
        """Compile the K-seed pass's chunk functions (the template's compile_step; its kernels run
        seeds_forward). False where there is none: vmap over a compiled step is not supported."""
        return self.own_pass and self.template.compile_step()

    def forward(self, inputs: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """inputs [K, T, B, I] (or [T, B, I] for every seed if `shared`) -> logits [K, T, B, O].
        Models with their own K-seed pass use it; the others run under vmap."""
        if self.own_pass:
            inputs = inputs.expand(self.k, *inputs.shape) if shared else inputs
            return self.template.seeds_forward(
                {**self.params, **self.buffers, **self.shared}, inputs
            )
        call = lambda p, b, x: functional_call(self.template, (p, b, self.shared), (x,))
        return vmap(call, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, inputs)

    def model(self, k: int, params: dict | None = None) -> torch.nn.Module:
        """Seed k as an ordinary module (for evaluation and traces), from `params` if given."""
        module = copy.deepcopy(self.template)
        source = params if params is not None else {n: p[k] for n, p in self.params.items()}
        buffers = {**self.shared, **{n: b[k] for n, b in self.buffers.items()}}
        saved = module.state_dict().keys()  # non-persistent buffers are not in a state dict
        module.load_state_dict({**{n: b for n, b in buffers.items() if n in saved}, **source})
        return module

    def seed_params(self, k: int) -> dict:
        return {n: p[k].detach().clone() for n, p in self.params.items()}


def score_seeds(stack: SeedStack, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-seed (cost bits, bit errors) per sequence on one shared batch: two tensors [K]."""

    def per_seed(
        logits, targets, mask
    ):  # logits [K, T, B, O]: each seed scored as it would be alone
        return (
            torch.stack([per_sequence_bce_bits(l, targets, mask) for l in logits]),
            torch.stack([per_sequence_bit_errors(l, targets, mask) for l in logits]),
        )

    parts = score_chunks(
        stack.template, lambda inputs: stack.forward(inputs, shared=True), batch, per_seed
    )
    return torch.cat([p[0] for p in parts], 1).mean(1), torch.cat([p[1] for p in parts], 1).mean(1)


def clip_per_seed(params: list[torch.Tensor], cfg: TrainConfig) -> torch.Tensor:
    """Clip each seed's gradients as `train.clip_and_check` would alone; returns the per-seed
    gradient norms [K] (non-finite where that seed's gradient is)."""
    norms = torch.stack([p.grad.flatten(1).pow(2).sum(1) for p in params]).sum(0).sqrt()
    if cfg.optimizer == "rmsprop":
        for p in params:
            p.grad.clamp_(-cfg.clip, cfg.clip)
    else:
        factor = (cfg.clip / (norms + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.mul_(factor.view(-1, *[1] * (p.dim() - 1)))
    return norms


def seeds_step(
    stack: SeedStack, optimizer, params: list, batch: Batch, cfg: TrainConfig
) -> StepScores:
    """One optimizer step of every seed on its own batch ([K, ...]). A seed whose loss is not
    finite adds nothing to the summed loss, so the others' gradients stay finite."""
    logits = stack.forward(batch.inputs)
    costs = torch.stack(
        [
            per_sequence_bce_bits(logits[k], batch.targets[k], batch.mask[k]).mean()
            for k in range(stack.k)
        ]
    )
    finite = torch.isfinite(costs)
    optimizer.zero_grad(set_to_none=True)
    torch.where(finite, costs, torch.zeros_like(costs)).sum().backward()
    norms = clip_per_seed(params, cfg)
    optimizer.step()
    errors = [
        float(per_sequence_bit_errors(logits[k].detach(), batch.targets[k], batch.mask[k]).mean())
        for k in range(stack.k)
    ]
    diverged = [
        "loss" if not finite[k] else ("gradient" if not torch.isfinite(norms[k]) else None)
        for k in range(stack.k)
    ]
    return StepScores(costs.detach().tolist(), errors, diverged)


class Seeds:
    """K seeds of one config as a Trainee (benchmarks/harness/train.py): one SeedStack, one
    optimizer over the stacked parameters, one data generator per seed."""

    def __init__(self, models: list[torch.nn.Module], cfg: TrainConfig, generators: list):
        self.stack, self.cfg, self.generators = SeedStack(models), cfg, generators
        if cfg.compile:  # the K-seed pass's chunks; a model without one trains eager (tested)
            self.stack.compile_step()
        self.k = self.stack.k
        self.device = next(iter(self.stack.params.values())).device
        self.params = list(self.stack.params.values())
        self.optimizer = make_optimizer(self.params, cfg)

    def draw(self, task: Task) -> Batch:
        batch = stack_batches([task.sample(self.cfg.batch_size, g) for g in self.generators])
        return Batch(*(t.to(self.device) for t in batch))

    def step(self, batch: Batch, step: int) -> StepScores:
        return seeds_step(self.stack, self.optimizer, self.params, batch, self.cfg)

    def validate(self, validation: Batch) -> list[tuple[float, float]]:
        costs, errors = score_seeds(self.stack, validation)
        return list(zip(costs.tolist(), errors.tolist()))

    def freeze(self, k: int) -> dict:
        return self.stack.seed_params(k)

    def model(self, k: int, stopped: dict) -> torch.nn.Module:
        return self.stack.model(k, stopped or None)

    def weights(self) -> dict:
        return {
            "weights": {n: p.detach().clone() for n, p in self.stack.params.items()},
            "optimizer": self.optimizer.state_dict(),
            "generators": [g.get_state() for g in self.generators],
        }

    def restore(self, saved: dict) -> None:
        for name, value in saved["weights"].items():
            self.stack.params[name].data.copy_(value)
        self.optimizer.load_state_dict(saved["optimizer"])
        for generator, state in zip(self.generators, saved["generators"]):
            generator.set_state(state)
