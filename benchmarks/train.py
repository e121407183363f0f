"""The training loop: pure compute. It knows nothing of the store or of files; it reports curve
points and checkpoint snapshots through callbacks and returns a TrainResult.

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
import signal
import time
from contextlib import contextmanager
from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from benchmarks.config import TrainConfig
from benchmarks.evaluate import score
from benchmarks.faults import maybe_kill
from benchmarks.rmsprop import GravesRMSprop
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


def train_step(model, optimizer, params: list, batch: Batch, cfg: TrainConfig, step: int) -> tuple[float, float]:
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


@contextmanager
def deferred_interrupt():
    """Turn Ctrl-C (SIGINT) into a flag checked between steps, so the checkpoint written on
    interrupt is a consistent step boundary. Outside the main thread signals cannot be caught
    here and Ctrl-C behaves as usual."""
    flag = {"stop": False}
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: flag.update(stop=True))
    except ValueError:  # not the main thread
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


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
    """Train `model` on batches drawn from `task` with the `data` generator.

    `resume` is a snapshot previously given to `on_checkpoint` (model, optimizer, generator
    state, step, curves, elapsed time); training continues from it exactly as if never stopped.
    Validation on the fixed `validation` batch happens every `eval_interval` steps and at the end.
    On Ctrl-C a checkpoint is written at the next step boundary, then KeyboardInterrupt is raised.
    `on_point` sees every curve point as it is made (live TensorBoard).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    optimizer = make_optimizer(params, cfg)
    state = {"step": 0, "curves": [], "converged_step": None, "elapsed": 0.0, "window": (0.0, 0.0, 0)}
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        data.set_state(resume["generator"])
        state = {key: resume[key] for key in state}
        state["curves"] = list(state["curves"])
    started = time.perf_counter() - state["elapsed"]
    step, curves = state["step"], state["curves"]
    window_cost, window_errors, window_n = state["window"]

    def save():
        if on_checkpoint is not None:
            on_checkpoint(snapshot(model, optimizer, data, step, curves, state["converged_step"],
                                   time.perf_counter() - started, (window_cost, window_errors, window_n)))

    bar = tqdm(total=cfg.steps, initial=step, desc=description, disable=None, leave=False, dynamic_ncols=True)
    with deferred_interrupt() as interrupt:
        while step < cfg.steps and not (cfg.stop_on_converge and state["converged_step"] is not None):
            model.train()
            batch = Batch(*(t.to(device) for t in task.sample(cfg.batch_size, data)))
            try:
                cost, errors = train_step(model, optimizer, params, batch, cfg, step + 1)
            except Diverged as error:
                bar.close()
                error.curves = curves
                raise
            step += 1
            maybe_kill("step")
            window_cost, window_errors, window_n = window_cost + cost, window_errors + errors, window_n + 1
            if step % cfg.log_interval == 0 or step == cfg.steps:
                curves.append(point("train", step, cfg, window_cost / window_n, window_errors / window_n, started))
                on_point(curves[-1])
                bar.set_postfix(cost=f"{window_cost / window_n:.2f}", refresh=False)
                window_cost, window_errors, window_n = 0.0, 0.0, 0
            if step % cfg.eval_interval == 0 or step == cfg.steps:
                validate(model, validation, step, cfg, curves, state, started)
                on_point(curves[-1])
            if step % cfg.checkpoint_interval == 0 and step < cfg.steps:
                save()
            bar.update(1)
            if interrupt["stop"]:
                bar.close()
                save()
                raise KeyboardInterrupt
    bar.close()
    if not curves or curves[-1]["split"] != "val":
        # Stopped on convergence or resumed at the end: make sure the last point is a validation one.
        validate(model, validation, step, cfg, curves, state, started)
    return TrainResult(curves, state["converged_step"], time.perf_counter() - started)


def validate(model, validation: Batch, step: int, cfg: TrainConfig, curves: list, state: dict, started: float):
    """Append a validation point and record the first converged step in `state`."""
    val_cost, val_errors = score(model, validation)
    curves.append(point("val", step, cfg, val_cost, val_errors, started))
    if state["converged_step"] is None and val_errors < CONVERGED_BIT_ERRORS:
        state["converged_step"] = step


def point(split: str, step: int, cfg: TrainConfig, cost: float, errors: float, started: float) -> dict:
    """One curve row."""
    return {"split": split, "step": step, "sequences": step * cfg.batch_size,
            "cost_bits": float(cost), "bit_errors": float(errors), "wall_s": time.perf_counter() - started}


def snapshot(model, optimizer, data, step, curves, converged, elapsed, window) -> dict:
    """Everything `train(resume=...)` needs to continue bit-for-bit, including the partly
    averaged training point (`window`: summed cost, summed errors, steps)."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "generator": data.get_state(),
            "step": step, "curves": list(curves), "converged_step": converged, "elapsed": elapsed,
            "window": tuple(window)}
