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
  is the cadence one run has too (benchmarks/cadence.py); this module adds the K-seed step.
Results match training each seed alone to float rounding (the tests check 1e-5), not bit for bit.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch.func import functional_call, stack_module_state, vmap

from ntm_bench.benchmarks.cadence import (
    Cadence,
    Divergence,
    LoopState,
    StepScores,
    from_group_snapshot,
    group_snapshot,
)
from ntm_bench.benchmarks.config import TrainConfig
from ntm_bench.benchmarks.curriculum import scheduled
from ntm_bench.benchmarks.evaluate import score, score_chunks
from ntm_bench.benchmarks.train import make_optimizer, progress_bar
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


class SeedRun(NamedTuple):
    """One seed of a trained group."""

    curves: list  # dicts: split, step, sequences, cost_bits, bit_errors, wall_s
    converged_step: int | None
    diverged: Divergence | None
    wall_s: float  # the group's wall time: the seeds trained together
    model: torch.nn.Module  # the seed's own model, as it stopped


def train_seeds(
    models: list[torch.nn.Module],
    task: Task,
    cfg: TrainConfig,
    generators: list[torch.Generator],
    validation: Batch,
    resume: dict | None = None,
    on_checkpoint=None,
    on_point=lambda k, point: None,
    description: str = "",
) -> list[SeedRun]:
    """Train K models (one generator per seed) as one; returns a SeedRun per seed. Logging,
    validation, checkpoints, Ctrl-C and divergence follow benchmarks/cadence.py, per seed."""
    stack = SeedStack(models)
    if cfg.compile:  # the K-seed pass's chunks; a model without one trains eager, as tests check
        stack.compile_step()
    device = next(iter(stack.params.values())).device
    params = list(stack.params.values())
    optimizer = make_optimizer(params, cfg)
    state = None if resume is None else resumed(stack, optimizer, generators, resume)

    def validate() -> list[tuple[float, float]]:
        costs, errors = score_seeds(stack, validation)
        return list(zip(costs.tolist(), errors.tolist()))

    save = None if on_checkpoint is None else saver(stack, optimizer, generators, on_checkpoint)
    cadence = Cadence(
        cfg, stack.k, validate, save, freeze=stack.seed_params, on_point=on_point, state=state
    )
    # one schedule, by the group's step, for every seed
    training_task = scheduled(task, cfg.curriculum)
    bar = progress_bar(cfg.steps, state.step if state else 0, description)
    with bar, cadence:
        while cadence.running():
            # Stopped seeds still draw their batches: every generator stays where it would be alone.
            drawn = training_task(cadence.state.step)
            batch = stack_batches([drawn.sample(cfg.batch_size, g) for g in generators])
            cadence.after_step(
                seeds_step(stack, optimizer, params, Batch(*(t.to(device) for t in batch)), cfg)
            )
            bar.update(1)
    # A stopped seed is scored and returned as it stopped: frozen parameters ({}: the current ones).
    final = cadence.finish(
        lambda k: score(stack.model(k, cadence.state.stopped[k] or None), validation)
    )
    return [
        SeedRun(
            final.curves[k],
            final.converged[k],
            final.diverged[k],
            cadence.wall_s(),
            stack.model(k, final.stopped[k] or None),
        )
        for k in range(stack.k)
    ]


def resumed(stack: SeedStack, optimizer, generators: list, resume: dict) -> LoopState:
    """Restore the stacked parameters, optimizer and generators of a group's snapshot (`saver`'s);
    returns the loop state to go on from."""
    for name, value in resume["params"].items():
        stack.params[name].data.copy_(value)
    optimizer.load_state_dict(resume["optimizer"])
    for generator, saved in zip(generators, resume["generators"]):
        generator.set_state(saved)
    return from_group_snapshot(resume)


def saver(stack: SeedStack, optimizer, generators: list, on_checkpoint):
    """The cadence's checkpoint call for a seed group: everything `resumed` needs."""

    def save(loop: LoopState) -> None:
        on_checkpoint(
            {
                "params": {n: p.detach().clone() for n, p in stack.params.items()},
                "optimizer": optimizer.state_dict(),
                "generators": [g.get_state() for g in generators],
                **group_snapshot(loop),
            }
        )

    return save
