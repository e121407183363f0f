"""Seeds as a batch dimension: K seeds of one (model, task, config) trained as one batched model.

The K models' parameters are stacked along a new leading dimension (torch.func.stack_module_state)
and the forward pass is `torch.func.vmap` of the ordinary model over that dimension (or the
model's own K-seed pass, `seeds_forward`, where it has one: the fused NTM and DNC), so one set of tensor
ops serves all seeds and the per-op overhead that dominates small recurrent models is paid once
instead of K times. Every seed keeps what it would have alone:

- its own init stream (each model is built by `build_seeded`) and its own data generator, so it
  sees exactly the batches it would see alone (batches of different lengths are padded at the
  end, which changes no scored output: the models are causal);
- its own optimizer arithmetic: Adam and RMSProp are element-wise, and the gradient-norm clip is
  computed per seed; the loss is the sum of the seeds' losses, whose gradient with respect to
  seed k's parameters is seed k's gradient;
- its own curve, convergence step and divergence: a seed that stops (converged with
  `stop_on_converge`, or diverged) has its parameters snapshotted and its curve closed, while
  the others go on.
Results match training each seed alone to float rounding (the tests check 1e-5), not bit for bit.
"""

from __future__ import annotations

import copy
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from benchmarks.config import TrainConfig
from benchmarks.evaluate import score, score_chunks
from benchmarks.faults import maybe_kill
from benchmarks.train import make_optimizer, point
from tasks.base import CONVERGED_BIT_ERRORS, Batch, Task, per_sequence_bce_bits, per_sequence_bit_errors


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
        return self.template.fused

    def compile_step(self) -> bool:
        """Compile the K-seed pass's chunk functions (the template's compile_step; its kernels run
        seeds_forward). False where there is none: vmap over a compiled step is not supported."""
        return self.own_pass and self.template.compile_step()

    def forward(self, inputs: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """inputs [K, T, B, I] (or [T, B, I] for every seed if `shared`) -> logits [K, T, B, O].
        Models with their own K-seed pass use it; the others run under vmap."""
        if self.own_pass:
            inputs = inputs.expand(self.k, *inputs.shape) if shared else inputs
            return self.template.seeds_forward({**self.params, **self.buffers, **self.shared}, inputs)
        call = lambda p, b, x: functional_call(self.template, (p, b, self.shared), (x,))
        return vmap(call, in_dims=(0, 0, None if shared else 0))(self.params, self.buffers, inputs)

    def model(self, k: int, params: dict | None = None) -> torch.nn.Module:
        """Seed k as an ordinary module (for evaluation and traces), from `params` if given."""
        module = copy.deepcopy(self.template)
        source = params if params is not None else {n: p[k] for n, p in self.params.items()}
        buffers = {**self.shared, **{n: b[k] for n, b in self.buffers.items()}}
        saved = module.state_dict().keys()   # non-persistent buffers are not in a state dict
        module.load_state_dict({**{n: b for n, b in buffers.items() if n in saved}, **source})
        return module

    def seed_params(self, k: int) -> dict:
        return {n: p[k].detach().clone() for n, p in self.params.items()}


def score_seeds(stack: SeedStack, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-seed (cost bits, bit errors) per sequence on one shared batch: two tensors [K]."""

    def per_seed(logits, targets, mask):   # logits [K, T, B, O]: each seed scored as it would be alone
        return (torch.stack([per_sequence_bce_bits(l, targets, mask) for l in logits]),
                torch.stack([per_sequence_bit_errors(l, targets, mask) for l in logits]))

    parts = score_chunks(stack.template, lambda inputs: stack.forward(inputs, shared=True), batch, per_seed)
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


def train_seeds(models: list[torch.nn.Module], task: Task, cfg: TrainConfig, generators: list[torch.Generator],
                validation: Batch, resume: dict | None = None, on_checkpoint=None,
                on_point=lambda k, point: None) -> list[dict]:
    """Train K models (one per seed) as one; returns per seed a dict with `curves`,
    `converged_step`, `diverged` (None or (step, what)), `wall_s` and the trained `model`."""
    stack = SeedStack(models)
    if cfg.compile:   # the K-seed pass's chunks; a model without one trains eager, as the tests check
        stack.compile_step()
    device = next(iter(stack.params.values())).device
    params = list(stack.params.values())
    optimizer = make_optimizer(params, cfg)
    K = stack.k
    state = {"step": 0, "curves": [[] for _ in range(K)], "converged": [None] * K, "diverged": [None] * K,
             "stopped": [None] * K, "windows": [[0.0, 0.0, 0] for _ in range(K)], "elapsed": 0.0}
    if resume is not None:
        for name, value in resume["params"].items():
            stack.params[name].data.copy_(value)
        optimizer.load_state_dict(resume["optimizer"])
        for g, s in zip(generators, resume["generators"]):
            g.set_state(s)
        state = {key: resume[key] for key in state}
    started = time.perf_counter() - state["elapsed"]

    def active(k):
        return state["stopped"][k] is None

    while state["step"] < cfg.steps and any(active(k) for k in range(K)):
        step = state["step"] + 1
        batch = stack_batches([task.sample(cfg.batch_size, g) for g in generators])
        batch = Batch(*(t.to(device) for t in batch))
        logits = stack.forward(batch.inputs)
        costs = torch.stack([per_sequence_bce_bits(logits[k], batch.targets[k], batch.mask[k]).mean() for k in range(K)])
        finite = torch.isfinite(costs)
        optimizer.zero_grad(set_to_none=True)
        torch.where(finite, costs, torch.zeros_like(costs)).sum().backward()
        norms = clip_per_seed(params, cfg)
        optimizer.step()
        state["step"] = step
        maybe_kill("step")
        errors = [float(per_sequence_bit_errors(logits[k].detach(), batch.targets[k], batch.mask[k]).mean()) for k in range(K)]
        values = costs.detach().tolist()
        for k in range(K):
            if not active(k):
                continue
            what = "loss" if not finite[k] else ("gradient" if not torch.isfinite(norms[k]) else None)
            if what is not None:
                state["diverged"][k] = (step, what)
                state["stopped"][k] = {}
                continue
            window = state["windows"][k]
            window[0], window[1], window[2] = window[0] + values[k], window[1] + errors[k], window[2] + 1
            if step % cfg.log_interval == 0 or step == cfg.steps:
                state["curves"][k].append(point("train", step, cfg, window[0] / window[2], window[1] / window[2], started))
                on_point(k, state["curves"][k][-1])
                state["windows"][k] = [0.0, 0.0, 0]
        if step % cfg.eval_interval == 0 or step == cfg.steps:
            validate_seeds(stack, validation, step, cfg, state, started, active, on_point)
        if on_checkpoint is not None and step % cfg.checkpoint_interval == 0 and step < cfg.steps:
            on_checkpoint({"params": {n: p.detach().clone() for n, p in stack.params.items()},
                           "optimizer": optimizer.state_dict(), "generators": [g.get_state() for g in generators],
                           **{key: copy.deepcopy(state[key]) for key in state if key != "elapsed"},
                           "elapsed": time.perf_counter() - started})

    results = []
    for k in range(K):
        curves = state["curves"][k]
        if state["diverged"][k] is None and (not curves or curves[-1]["split"] != "val"):
            seed_model = stack.model(k, state["stopped"][k] or None)
            cost, errors = score(seed_model, validation)
            curves.append(point("val", state["step"], cfg, cost, errors, started))
        results.append({"curves": curves, "converged_step": state["converged"][k], "diverged": state["diverged"][k],
                        "wall_s": time.perf_counter() - started,
                        "model": stack.model(k, state["stopped"][k] or None)})
    return results


def validate_seeds(stack: SeedStack, validation: Batch, step: int, cfg: TrainConfig, state: dict, started: float,
                   active, on_point) -> None:
    """A validation point for every active seed; a seed that converges under stop_on_converge
    is snapshotted and stops."""
    costs, errors = score_seeds(stack, Batch(*(t.to(next(iter(stack.params.values())).device) for t in validation)))
    for k in range(stack.k):
        if not active(k):
            continue
        state["curves"][k].append(point("val", step, cfg, float(costs[k]), float(errors[k]), started))
        on_point(k, state["curves"][k][-1])
        if state["converged"][k] is None and float(errors[k]) < CONVERGED_BIT_ERRORS:
            state["converged"][k] = step
            if cfg.stop_on_converge:
                state["stopped"][k] = stack.seed_params(k)
