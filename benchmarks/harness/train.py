"""The training loop, one for a run and for K seeds of one config trained as one stacked model:
pure compute. It knows nothing of the store or of files; it reports curve points and checkpoints
through callbacks and returns one SeedRun per seed. What it trains is a Trainee: OneModel here,
or batched.Seeds; each brings its step and keeps its weights. Logging, validation, checkpoints,
Ctrl-C and divergence are the cadence's (benchmarks/harness/cadence.py), the same for both.

Optimizers, chosen by `train.optimizer`:
- "rmsprop": the paper's, Graves (2013) RMSProp (benchmarks.harness.rmsprop): centered, momentum
0.9,
  decay 0.95 and epsilon 1e-4 inside the square root. Torch's RMSprop(centered=True) adds epsilon
  outside it instead, which makes steps larger by sqrt(v + 1e-4) / (sqrt(v) + 1e-4) for a centered
  gradient variance v: ~3x at v = 1e-5, ~9x at 1e-6, up to 100x as v -> 0.
  Gradients are clipped element-wise to [-clip, clip] (the paper: 10).
- "adam": Collier & Beel 2018, with the gradient norm clipped at `clip` (they use 50).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Protocol

import torch
from tqdm.auto import tqdm

from ntm_bench.benchmarks.harness.cadence import (
    Cadence,
    Diverged,
    Divergence,
    LoopState,
    StepScores,
    from_snapshot,
    snapshot,
)
from ntm_bench.benchmarks.harness.config import TrainConfig
from ntm_bench.benchmarks.harness.curriculum import scheduled
from ntm_bench.benchmarks.harness.evaluate import score
from ntm_bench.benchmarks.harness.rmsprop import GravesRMSprop
from ntm_bench.tasks.base import Batch, Task, bit_errors, cost_bits

__all__ = ["OneModel", "SeedRun", "Trainee", "make_optimizer", "train", "train_step"]


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


class Trainee(Protocol):
    """What the loop trains: one model (OneModel, below) or K seeds of one config stacked as one
    model (benchmarks/harness/batched.py Seeds). The loop, the cadence and the checkpoint are the
    same for both; only the step and where the weights live differ."""

    k: int  # seeds

    def draw(self, task: Task) -> Batch:
        """Every seed's next training batch from its own generator, on the model's device."""

    def step(self, batch: Batch, step: int) -> StepScores:
        """One optimizer step of every training seed; a seed whose loss or gradient is not finite
        is named in StepScores.diverged (the cadence stops it there; a diverged seed's weights are
        neither evaluated nor kept)."""

    def validate(self, validation: Batch) -> list[tuple[float, float]]:
        """Every seed's (cost, bit errors) per sequence on the validation batch."""

    def freeze(self, k: int) -> dict:
        """What seed k keeps when it stops on convergence ({}: its current weights)."""

    def model(self, k: int, stopped: dict) -> torch.nn.Module:
        """Seed k as an ordinary module, as it stopped (`stopped`: what freeze gave, or {})."""

    def weights(self) -> dict:
        """The state a checkpoint keeps besides the loop's: weights, optimizer, generators."""

    def restore(self, saved: dict) -> None:
        """Load what `weights` gave."""


class OneModel:
    """One run as a Trainee: its model, optimizer and data generator."""

    k = 1

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, data: torch.Generator):
        self.module, self.cfg, self.data = model, cfg, data
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = self.params[0].device
        self.optimizer = make_optimizer(self.params, cfg)

    def draw(self, task: Task) -> Batch:
        return Batch(*(t.to(self.device) for t in task.sample(self.cfg.batch_size, self.data)))

    def step(self, batch: Batch, step: int) -> StepScores:
        self.module.train()
        try:
            cost, errors = train_step(
                self.module, self.optimizer, self.params, batch, self.cfg, step
            )
        except Diverged as error:
            return StepScores([math.nan], [math.nan], [error.what])
        return StepScores([cost], [errors])

    def validate(self, validation: Batch) -> list[tuple[float, float]]:
        return [score(self.module, validation)]

    def freeze(self, k: int) -> dict:
        return {}  # a run that stops trains no further: its weights stay as they are

    def model(self, k: int, stopped: dict) -> torch.nn.Module:
        return self.module

    def weights(self) -> dict:
        return {
            "weights": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": [self.data.get_state()],
        }

    def restore(self, saved: dict) -> None:
        self.module.load_state_dict(saved["weights"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.data.set_state(saved["generators"][0])


class SeedRun(NamedTuple):
    """One seed of a training: its curve, convergence, divergence and model as it stopped."""

    curves: list  # dicts: split, step, sequences, cost_bits, bit_errors, wall_s
    converged_step: int | None
    diverged: Divergence | None
    wall_s: float  # the training's wall time (a group's seeds trained together)
    model: torch.nn.Module


def train(
    trainee: Trainee,
    task: Task,
    cfg: TrainConfig,
    validation: Batch,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    description: str = "",
    on_point: Callable[[int, dict], None] = lambda k, point: None,
) -> list[SeedRun]:
    """Train `trainee`'s seeds on batches drawn from `task`, on the cadence of
    benchmarks/harness/cadence.py: validation on the fixed `validation` batch every `eval_interval`
    steps and at the end; on Ctrl-C a checkpoint at the next step boundary and then
    KeyboardInterrupt; a seed whose loss or gradient is not finite stops there, its curve closed.
    `resume` is a checkpoint once given to `on_checkpoint` (checkpoint_fields); training goes on
    from it exactly as if never stopped. `on_point(k, point)` sees every curve point as it is made
    (live TensorBoard). One SeedRun per seed."""
    state = None
    if resume is not None:
        trainee.restore(resume)
        state = from_snapshot(resume)
    bar = progress_bar(cfg.steps, state.step if state else 0, description)

    def shown(k: int, made: dict) -> None:
        on_point(k, made)
        if made["split"] == "train" and trainee.k == 1:
            bar.set_postfix(cost=f"{made['cost_bits']:.2f}", refresh=False)

    def save(loop: LoopState) -> None:
        on_checkpoint({**trainee.weights(), **snapshot(loop)})

    cadence = Cadence(
        cfg,
        trainee.k,
        lambda: trainee.validate(validation),
        None if on_checkpoint is None else save,
        freeze=trainee.freeze,
        on_point=shown,
        state=state,
    )
    # steps done -> the task itself, or its curriculum's: one schedule for every seed
    training_task = scheduled(task, cfg.curriculum)
    with bar, cadence:
        while cadence.running():
            # Stopped seeds still draw their batches: every generator stays where it would be alone.
            batch = trainee.draw(training_task(cadence.state.step))
            cadence.after_step(trainee.step(batch, cadence.state.step + 1))
            bar.update(1)
    # A stopped seed is scored and returned as it stopped: frozen parameters ({}: the current ones).
    final = cadence.finish(
        lambda k: score(trainee.model(k, cadence.state.stopped[k] or {}), validation)
    )
    return [
        SeedRun(
            final.curves[k],
            final.converged[k],
            final.diverged[k],
            cadence.wall_s(),
            trainee.model(k, final.stopped[k] or {}),
        )
        for k in range(trainee.k)
    ]


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
