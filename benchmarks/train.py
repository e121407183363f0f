"""The training loop: pure compute. It knows nothing of the store or of files; it reports curve
points and checkpoint snapshots through callbacks and returns a TrainResult.

Optimizers, chosen by `train.optimizer`:
- "rmsprop": the paper's. Graves (2013) RMSProp is the centered form with momentum 0.9 and
  decay 0.95; torch's RMSprop(centered=True) adds epsilon (1e-4) outside the square root rather
  than inside, a difference that only matters when the gradient variance is below ~1e-8.
  Gradients are clipped element-wise to [-clip, clip] (the paper: 10).
- "adam": Collier & Beel 2018, with the gradient norm clipped at `clip` (they use 50).
"""

from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from benchmarks.config import TrainConfig
from benchmarks.evaluate import score
from tasks.base import CONVERGED_BIT_ERRORS, Batch, Task, bit_errors, cost_bits


class Diverged(RuntimeError):
    """A non-finite loss or gradient; carries the step and what went non-finite."""

    def __init__(self, step: int, what: str):
        super().__init__(f"non-finite {what} at step {step}")
        self.step, self.what = step, what
        self.curves: list = []  # the curve points recorded before the divergence


class TrainResult(NamedTuple):
    curves: list            # dicts: split, step, sequences, cost_bits, bit_errors, wall_s
    converged_step: int | None
    wall_s: float


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by the config (see the module docstring)."""
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.95, eps=1e-4, momentum=cfg.momentum, centered=True)
    return torch.optim.Adam(params, lr=cfg.lr)


def clip_and_check(params: list, cfg: TrainConfig, step: int) -> None:
    """Clip the gradients as the optimizer's protocol says; raise Diverged if any is non-finite."""
    if cfg.optimizer == "rmsprop":
        norm = torch.nn.utils.clip_grad_norm_(params, math.inf)
        torch.nn.utils.clip_grad_value_(params, cfg.clip)
    else:
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)
    if not torch.isfinite(norm):
        raise Diverged(step, "gradient")


def train(
    model: torch.nn.Module,
    task: Task,
    cfg: TrainConfig,
    data: torch.Generator,
    validation: Batch,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    description: str = "",
) -> TrainResult:
    """Train `model` on batches drawn from `task` with the `data` generator.

    `resume` is a snapshot previously given to `on_checkpoint` (model, optimizer, generator
    state, step, curves, elapsed time); training continues from it exactly as if never stopped.
    Validation on the fixed `validation` batch happens every `eval_interval` steps and at the end.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    optimizer = make_optimizer(params, cfg)
    step, curves, converged, elapsed = 0, [], None, 0.0
    window_cost, window_errors, window_n = 0.0, 0.0, 0      # the training point being averaged
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        data.set_state(resume["generator"])
        step, curves, converged, elapsed = resume["step"], list(resume["curves"]), resume["converged_step"], resume["elapsed"]
        window_cost, window_errors, window_n = resume["window"]

    started = time.perf_counter() - elapsed
    bar = tqdm(total=cfg.steps, initial=step, desc=description, disable=None, leave=False, dynamic_ncols=True)
    while step < cfg.steps and not (cfg.stop_on_converge and converged is not None):
        model.train()
        batch = Batch(*(t.to(device) for t in task.sample(cfg.batch_size, data)))
        logits = model(batch.inputs)
        loss = cost_bits(logits, batch.targets, batch.mask)
        optimizer.zero_grad(set_to_none=True)
        try:
            if not torch.isfinite(loss):
                raise Diverged(step + 1, "loss")
            loss.backward()
            clip_and_check(params, cfg, step + 1)
        except Diverged as error:
            bar.close()
            error.curves = curves
            raise
        optimizer.step()
        step += 1
        window_cost += float(loss.detach())
        window_errors += float(bit_errors(logits, batch.targets, batch.mask))
        window_n += 1

        if step % cfg.log_interval == 0 or step == cfg.steps:
            curves.append(point("train", step, cfg, window_cost / window_n, window_errors / window_n, started))
            bar.set_postfix(cost=f"{window_cost / window_n:.2f}", refresh=False)
            window_cost, window_errors, window_n = 0.0, 0.0, 0
        if step % cfg.eval_interval == 0 or step == cfg.steps:
            val_cost, val_errors = score(model, validation)
            curves.append(point("val", step, cfg, val_cost, val_errors, started))
            if converged is None and val_errors < CONVERGED_BIT_ERRORS:
                converged = step
        if on_checkpoint is not None and step % cfg.checkpoint_interval == 0 and step < cfg.steps:
            on_checkpoint(snapshot(model, optimizer, data, step, curves, converged, time.perf_counter() - started,
                                   (window_cost, window_errors, window_n)))
        bar.update(1)
    bar.close()
    if not curves or curves[-1]["split"] != "val":
        # Stopped on convergence or resumed at the end: make sure the last point is a validation one.
        val_cost, val_errors = score(model, validation)
        curves.append(point("val", step, cfg, val_cost, val_errors, started))
    return TrainResult(curves, converged, time.perf_counter() - started)


def point(split: str, step: int, cfg: TrainConfig, cost: float, errors: float, started: float) -> dict:
    """One curve row."""
    return {"split": split, "step": step, "sequences": step * cfg.batch_size,
            "cost_bits": float(cost), "bit_errors": float(errors), "wall_s": time.perf_counter() - started}


def snapshot(model, optimizer, data, step, curves, converged, elapsed, window) -> dict:
    """Everything `train(resume=...)` needs to continue bit-for-bit, including the partly
    averaged training point (`window`: summed cost, summed errors, steps)."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "generator": data.get_state(),
            "step": step, "curves": list(curves), "converged_step": converged, "elapsed": elapsed,
            "window": window}
