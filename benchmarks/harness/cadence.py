"""The training cadence: everything that happens around the optimizer steps, for one run
(benchmarks/harness/train.py) and for K seeds trained as one stacked model
(benchmarks/harness/batched.py) alike.

The loop (benchmarks/harness/train.py) owns only the step of what it trains (forward, backward,
clip, optimizer step). After each step it hands the cadence every seed's cost and bit errors, and
the cadence does the rest, in this order,
so that every checkpoint, periodic or on Ctrl-C, is a step boundary:

    step n ──> fault points   benchmarks/process/faults.py: the crash-safety tests kill or pause
                              here
           ──> divergence     a seed whose loss or gradient is non-finite stops, its curve closed
                              (its parameters were left as they were before that step)
           ──> log window     each seed's cost and errors summed; every log_interval steps and at
                              the last step their mean is a "train" point and the window restarts
           ──> validation     every eval_interval steps and at the last: a "val" point per seed;
                              the first one under CONVERGED_BIT_ERRORS is the converged step, and
                              under stop_on_converge the seed stops there, its parameters frozen
           ──> checkpoint     every checkpoint_interval steps, never at the last (the result
                              follows)
           ──> interrupt      Ctrl-C during the step: checkpoint now, then KeyboardInterrupt

The loop ends at the last step or when no seed is left training; `finish` then gives a final
"val" point to any seed whose curve does not end in one. LoopState is all a checkpoint needs to go
on bit for bit; `snapshot` writes it, one format for a run and a seed group.
"""

from __future__ import annotations

import copy
import dataclasses
import signal
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

from ntm_bench.benchmarks.harness.config import TrainConfig
from ntm_bench.benchmarks.process.faults import maybe_kill, maybe_pause
from ntm_bench.results.schema import CONVERGED_BIT_ERRORS


class Diverged(RuntimeError):
    """A non-finite loss or gradient; carries the step and what went non-finite."""

    def __init__(self, step: int, what: str):
        super().__init__(f"non-finite {what} at step {step}")
        self.step, self.what = step, what


class Divergence(NamedTuple):
    """Where and how a seed diverged."""

    step: int
    what: str  # "loss" or "gradient"


class Window(NamedTuple):
    """One seed's training steps since its last "train" point: summed cost, summed errors, steps."""

    cost: float = 0.0
    errors: float = 0.0
    n: int = 0

    def add(self, cost: float, errors: float) -> Window:
        return Window(self.cost + cost, self.errors + errors, self.n + 1)


class StepScores(NamedTuple):
    """What one optimizer step gives the cadence, per seed: cost in bits and bit errors per
    sequence, and what went non-finite (None, "loss" or "gradient"; None for all when omitted)."""

    costs: list[float]
    errors: list[float]
    diverged: list[str | None] | None = None


@dataclass
class LoopState:
    """Where training stands, per seed where it differs between seeds."""

    step: int
    curves: list[list[dict]]  # curve points: split, step, sequences, cost_bits, bit_errors, wall_s
    converged: list[int | None]  # first step whose validation point converged
    diverged: list[Divergence | None]
    stopped: list[
        dict | None
    ]  # None while training; what a stopped seed left ({} or frozen parameters)
    windows: list[Window]
    elapsed: float = 0.0  # training seconds before this process (resumed runs)

    @classmethod
    def fresh(cls, seeds: int) -> LoopState:
        return cls(
            0,
            [[] for _ in range(seeds)],
            [None] * seeds,
            [None] * seeds,
            [None] * seeds,
            [Window() for _ in range(seeds)],
        )


# The checkpoint format: 2 since one loop trains a run and a seed group alike (format 1, before
# it, had one layout per loop and no "format" key). The trainee's weights, optimizer and
# generators (benchmarks/harness/train.py Trainee.weights) sit beside these fields.
CHECKPOINT_FORMAT = 2


def snapshot(state: LoopState) -> dict:
    """The loop's checkpoint fields, plain Python and tensors: a checkpoint loads with
    torch.load(weights_only=True), without this module's classes."""
    return {
        "format": CHECKPOINT_FORMAT,
        "step": state.step,
        "curves": copy.deepcopy(state.curves),
        "converged": list(state.converged),
        "diverged": [None if d is None else tuple(d) for d in state.diverged],
        "stopped": copy.deepcopy(state.stopped),
        "windows": [list(w) for w in state.windows],
        "elapsed": state.elapsed,
    }


def from_snapshot(saved: dict) -> LoopState:
    """The LoopState of a checkpoint (`snapshot`'s fields)."""
    return LoopState(
        saved["step"],
        [list(c) for c in saved["curves"]],
        list(saved["converged"]),
        [None if d is None else Divergence(*d) for d in saved["diverged"]],
        list(saved["stopped"]),
        [Window(*w) for w in saved["windows"]],
        saved["elapsed"],
    )


def point(
    split: str, step: int, cfg: TrainConfig, cost: float, errors: float, started: float
) -> dict:
    """One curve row."""
    return {
        "split": split,
        "step": step,
        "sequences": step * cfg.batch_size,
        "cost_bits": float(cost),
        "bit_errors": float(errors),
        "wall_s": time.perf_counter() - started,
    }


Scorer = Callable[[], list[tuple[float, float]]]


class Cadence:
    """The per-step timeline of the module docstring for `seeds` seeds (1: one run).

    validate()  -> every seed's (cost, bit errors) on the validation batch (only training seeds' are
                   used)
    save(state) -> write a checkpoint of the model side plus `state` (None: no checkpoints)
    freeze(k)   -> what seed k keeps when it stops on convergence (a group: its parameters)
    on_point(k, point) sees every curve point as it is made.
    Use it as a context manager around the loop: inside, Ctrl-C only sets a flag (see after_step).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        seeds: int,
        validate: Scorer,
        save: Callable[[LoopState], None] | None = None,
        freeze: Callable[[int], dict] = lambda k: {},
        on_point: Callable[[int, dict], None] = lambda k, p: None,
        state: LoopState | None = None,
    ):
        self.cfg, self.validate, self.save, self.freeze, self.on_point = (
            cfg,
            validate,
            save,
            freeze,
            on_point,
        )
        self.state = state if state is not None else LoopState.fresh(seeds)
        self.started = time.perf_counter() - self.state.elapsed
        self.interrupted = False
        self._installed, self._previous = False, None  # our SIGINT handler, and the one it replaced

    def __enter__(self) -> Cadence:
        # Outside the main thread signals cannot be caught, and Ctrl-C behaves as usual there.
        try:
            self._previous = signal.signal(signal.SIGINT, self._interrupt)
            self._installed = True
        except ValueError:
            pass
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if self._installed:
            # None: the previous handler was not set from Python; Python's own is the usual one.
            signal.signal(
                signal.SIGINT,
                self._previous if self._previous is not None else signal.default_int_handler,
            )
            self._installed = False
        return False

    def _interrupt(self, signum, frame) -> None:
        self.interrupted = True

    def training(self) -> list[int]:
        """The seeds still training."""
        return [k for k, stopped in enumerate(self.state.stopped) if stopped is None]

    def running(self) -> bool:
        return self.state.step < self.cfg.steps and bool(self.training())

    def wall_s(self) -> float:
        return time.perf_counter() - self.started

    def after_step(self, scores: StepScores) -> None:
        """Everything after optimizer step `state.step + 1`, in the module docstring's order."""
        state, cfg = self.state, self.cfg
        state.step = step = state.step + 1
        maybe_kill("step")
        maybe_pause("step")
        for k in self.training():
            what = scores.diverged[k] if scores.diverged is not None else None
            if what is not None:
                state.diverged[k], state.stopped[k] = Divergence(step, what), {}
                continue
            state.windows[k] = window = state.windows[k].add(scores.costs[k], scores.errors[k])
            if step % cfg.log_interval == 0 or step == cfg.steps:
                self._append(k, "train", window.cost / window.n, window.errors / window.n)
                state.windows[k] = Window()
        if (step % cfg.eval_interval == 0 or step == cfg.steps) and self.training():
            scored = self.validate()
            for k in self.training():
                self._validated(k, *scored[k])
        if step % cfg.checkpoint_interval == 0 and step < cfg.steps:
            self._save()
        if self.interrupted:
            self._save()
            raise KeyboardInterrupt

    def finish(self, score: Callable[[int], tuple[float, float]]) -> LoopState:
        """Give every seed that did not diverge a last validation point (`score(k)`) unless its
        curve ends in one already (it stopped on convergence, or resumed at the end); the final
        state."""
        for k, curves in enumerate(self.state.curves):
            if self.state.diverged[k] is None and (not curves or curves[-1]["split"] != "val"):
                self._validated(k, *score(k))
        return self.state

    def _validated(self, k: int, cost: float, errors: float) -> None:
        """Seed k's validation point; its first converged step, where it stops under
        stop_on_converge."""
        state = self.state
        self._append(k, "val", cost, errors)
        if state.converged[k] is None and errors < CONVERGED_BIT_ERRORS:
            state.converged[k] = state.step
            if self.cfg.stop_on_converge:
                state.stopped[k] = self.freeze(k)

    def _append(self, k: int, split: str, cost: float, errors: float) -> None:
        self.state.curves[k].append(
            point(split, self.state.step, self.cfg, cost, errors, self.started)
        )
        self.on_point(k, self.state.curves[k][-1])

    def _save(self) -> None:
        if self.save is not None:
            self.save(dataclasses.replace(self.state, elapsed=self.wall_s()))
