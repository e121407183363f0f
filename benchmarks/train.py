"""One run's training loop: pure compute. It knows nothing of the store or of files; it reports
curve points and checkpoint snapshots through callbacks and returns a TrainResult. The loop is
its optimizer step; logging, validation, checkpoints, Ctrl-C and divergence are the cadence's
(benchmarks/cadence.py), shared with the seed groups of benchmarks/batched.py.

Optimizers, chosen by `train.optimizer`:
- "rmsprop": the paper's, Graves (2013) RMSProp (benchmarks.rmsprop): centered, momentum 0.9,
  decay 0.95 and epsilon 1e-4 inside the square root. Torch's RMSprop(centered=True) adds epsilon
  outside it instead, which makes steps larger by sqrt(v + 1e-4) / (sqrt(v) + 1e-4) for a centered
  gradient variance v: ~3x at v = 1e-5, ~9x at 1e-6, up to 100x as v -> 0.
  Gradients are clipped element-wise to [-clip, clip] (the paper: 10).
- "adam": Collier & Beel 2018, with the gradient norm clipped at `clip` (they use 50).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from ntm_bench.benchmarks.cadence import (
    Cadence,
    Diverged,
    LoopState,
    StepScores,
    from_run_snapshot,
    run_snapshot,
)
from ntm_bench.benchmarks.config import TrainConfig
from ntm_bench.benchmarks.curriculum import scheduled
from ntm_bench.benchmarks.evaluate import score
from ntm_bench.benchmarks.rmsprop import GravesRMSprop
from ntm_bench.tasks.base import Batch, Task, bit_errors, cost_bits

__all__ = ["TrainResult", "make_optimizer", "train", "train_step"]


class TrainResult(NamedTuple):
    curves: list  # dicts: split, step, sequences, cost_bits, bit_errors, wall_s
    converged_step: int | None
    wall_s: float


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by the config (see the module docstring)."""
    if cfg.optimizer == "rmsprop":
        return GravesRMSprop(params, lr=cfg.lr, decay=0.95, eps=1e-4, momentum=cfg.momentum)
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


def train_step(
    model, optimizer, params: list, batch: Batch, cfg: TrainConfig, step: int
) -> tuple[float, float]:
    """One optimizer step on `batch`; returns (cost in bits, bit errors) per sequence.
    Raises Diverged before the parameters change if the loss or a gradient is not finite."""
    logits = model(batch.inputs)
    loss = cost_bits(logits, batch.targets, batch.mask)
    if not torch.isfinite(loss):
        raise Diverged(step, "loss")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip_and_check(params, cfg, step)
    optimizer.step()
    return float(loss.detach()), float(bit_errors(logits, batch.targets, batch.mask))


def train(
    model: torch.nn.Module,
    task: Task,
    cfg: TrainConfig,
    data: torch.Generator,
    validation: Batch,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    description: str = "",
    on_point: Callable[[dict], None] = lambda point: None,
) -> TrainResult:
    """Train `model` on batches drawn from `task` with the `data` generator, on the cadence of
    benchmarks/cadence.py: validation on the fixed `validation` batch every `eval_interval` steps
    and at the end, on Ctrl-C a checkpoint at the next step boundary and then KeyboardInterrupt,
    on divergence Diverged carrying the curve. `resume` is a snapshot once given to `on_checkpoint`;
    training goes on from it exactly as if never stopped. `on_point` sees every curve point as it
    is made (live TensorBoard)."""
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    optimizer = make_optimizer(params, cfg)
    state = None if resume is None else resumed(model, optimizer, data, resume, cfg)
    bar = progress_bar(cfg.steps, state.step if state else 0, description)

    def shown(k: int, made: dict) -> None:
        on_point(made)
        if made["split"] == "train":
            bar.set_postfix(cost=f"{made['cost_bits']:.2f}", refresh=False)

    save = None if on_checkpoint is None else saver(model, optimizer, data, on_checkpoint)
    cadence = Cadence(cfg, 1, lambda: [score(model, validation)], save, on_point=shown, state=state)
    # steps done -> the task itself, or its curriculum's
    training_task = scheduled(task, cfg.curriculum)
    with bar, cadence:
        while cadence.running():
            model.train()
            drawn = training_task(cadence.state.step).sample(cfg.batch_size, data)
            batch = Batch(*(t.to(device) for t in drawn))
            cost, errors = train_step(model, optimizer, params, batch, cfg, cadence.state.step + 1)
            cadence.after_step(StepScores([cost], [errors]))
            bar.update(1)
    final = cadence.finish(lambda k: score(model, validation))
    return TrainResult(final.curves[0], final.converged[0], cadence.wall_s())


def resumed(model, optimizer, data: torch.Generator, resume: dict, cfg: TrainConfig) -> LoopState:
    """Restore the model, optimizer and data generator of a run's snapshot (`saver`'s); returns
    the loop state to go on from."""
    model.load_state_dict(resume["model"])
    optimizer.load_state_dict(resume["optimizer"])
    data.set_state(resume["generator"])
    return from_run_snapshot(resume, cfg)


def saver(model, optimizer, data: torch.Generator, on_checkpoint: Callable[[dict], None]):
    """The cadence's checkpoint call for one run: everything `resumed` needs, to on_checkpoint."""

    def save(loop: LoopState) -> None:
        on_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": data.get_state(),
                **run_snapshot(loop),
            }
        )

    return save


def progress_bar(total: int, initial: int, description: str) -> tqdm:
    """The steps' progress bar on a terminal (tqdm's disable=None: none when not a TTY, as in a
    worker's log file); left off the screen when done, so a suite's bars do not pile up."""
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        disable=None,
        leave=False,
        dynamic_ncols=True,
    )
