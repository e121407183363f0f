"""The task contract and the metrics every report uses.

A task turns a `torch.Generator` into a `Batch` of time-major tensors. Sequences inside one batch
may have different lengths: each is padded at the end with zero inputs and a zero mask, so the
padding never changes a scored output (the models are causal) and a sequence scores the same
alone as inside a batch.

The metrics are defined once, here, and used by training, evaluation and the reports:

    cost_bits(b)  = sum_{t,o} mask[t,b] * BCE(sigmoid(logits[t,b,o]), targets[t,b,o]) / ln 2
    bit_errors(b) = sum_{t,o} mask[t,b] * [ (logits[t,b,o] > 0) != (targets[t,b,o] > 0.5) ]

both averaged over the sequences of the batch. `logits > 0` is `sigmoid(logits) > 0.5`.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

# The largest value of any axis, trained or evaluated: the paper's longest test is 120 steps,
# and a sequence this long already holds 10^4 vectors; larger is a typo, refused before it
# allocates.
MAX_SIZE = 10_000


class Batch(NamedTuple):
    """inputs [T, B, I], targets [T, B, O], mask [T, B] (1 where the output is scored)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor


class Task:
    """Base class: subclasses set `input_size`, `output_size`, `axes` and implement `sample`.

    `axes` names the generalization axes that `sample(**size)` accepts (e.g. ("length",)); a
    size left out is drawn from the training distribution, a size given is used for every
    sequence of the batch.
    """

    input_size: int
    output_size: int
    axes: tuple[str, ...] = ()
    # Output channel groups scored apart in the evaluations as well as together, {name: slice of
    # the output channels} (repeat copy's end marker apart from its content bits); None: only the
    # total is scored.
    channels: dict[str, slice] | None = None

    def sample(self, batch_size: int, generator: torch.Generator, **size: int) -> Batch:
        """`batch_size` sequences drawn from `generator` only, time-major: inputs [T, B, I],
        targets [T, B, O], mask [T, B]. An axis given in `size` fixes that size for every
        sequence (a generalization point); one left out is drawn from the training range."""
        raise NotImplementedError

    def memory_needed(self, **size: int) -> int | None:
        """How many vectors a memory model must hold at once for sequences of `size` (axes left
        out at their largest training value); None where the task sets no such bound. The
        planner rejects memories smaller than the training sizes need, and the evaluations mark
        the points that need more than the model has as beyond its memory."""
        return None

    def optimal_cost(self, batch: Batch) -> torch.Tensor | None:
        """The best achievable cost of each sequence of `batch` in bits [B] where the task can
        compute it (n-grams: the Bayes-optimal predictor), stored beside a run's final cost as
        its reference; None for tasks without one."""
        return None

    def trivial_costs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """What predictors that learn nothing of a sequence's content cost on `batch`, in bits per
        sequence [B], exactly: {"chance": every scored bit predicted 0.5, i.e. 1 bit each}, and
        where the task allows better without storing content, "memoryless" (the best predictor
        that keeps no content of the sequence: repeat copy's end marker placed exactly) and
        "one_item" (one that keeps a single item: priority sort's highest-priority vector). A
        model "has learned" a task only when it beats the best of these by a declared margin
        (reports/claims.yaml), so a cost near them decides no claim."""
        return {"chance": batch.mask.sum(0) * self.output_size}

    def scored_bits(self, **size: int) -> int:
        """The most output bits one sequence at `size` has scored (axes left out at their largest
        training value): no sequence's bit errors can exceed it, so a stored or published count
        above it is not a result (benchmarks/harness/run_document.py). Read off sampled sequences,
        the most of 16, so a task whose scored span varies at a fixed size is bounded too.
        ValueError (check_size) for an axis the task lacks or a size out of range."""
        self.check_size(size)
        for axis in self.axes:
            if size.get(axis) is None and self.max_size(axis) is not None:
                size[axis] = self.max_size(axis)
        batch = self.sample(16, torch.Generator().manual_seed(0), **size)
        return int(batch.mask.sum(0).max()) * self.output_size

    def max_size(self, axis: str) -> int | None:
        """The largest training value of `axis` (`max_<axis>` of the task), or None."""
        value = vars(self).get(f"max_{axis}")
        return None if value is None else int(value)

    def min_size(self, axis: str) -> int | None:
        """The smallest training value of `axis` (`min_<axis>` of the task), or None."""
        value = vars(self).get(f"min_{axis}")
        return None if value is None else int(value)

    def capped(self, axis: str, maximum: int) -> Task:
        """This task with its training draws of `axis` going up to `maximum` only (train.curriculum,
        benchmarks/harness/curriculum.py): a shallow copy with `max_<axis>` set, which `sample`
        reads. What was derived from the full range at construction (repeat copy's count
        normalization) stays. A task that draws its training sizes otherwise overrides this."""
        view = copy.copy(self)
        setattr(view, f"max_{axis}", int(maximum))
        return view

    def check_size(self, size: dict) -> None:
        """Raise ValueError naming the axis when `size` has an unknown axis or a value outside
        [1, MAX_SIZE]."""
        for axis, value in size.items():
            if axis not in self.axes:
                known = ", ".join(self.axes) or "none"
                raise ValueError(f"{type(self).__name__} has no axis {axis!r} (known: {known})")
            if value is not None and not 1 <= int(value) <= MAX_SIZE:
                raise ValueError(f"{axis} must be in [1, {MAX_SIZE}], got {value}")


def randint(low: int, high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n integers uniform in [low, high] inclusive, drawn from `generator` (a long tensor [n])."""
    return torch.randint(low, high + 1, (n,), generator=generator)


def sizes(
    fixed: int | None, low: int, high: int, n: int, generator: torch.Generator
) -> torch.Tensor:
    """Per-sequence sizes [n]: all `fixed` when a generalization size is given, else uniform in
    [low, high] from `generator` (the training distribution)."""
    if fixed is None:
        return randint(low, high, n, generator)
    return torch.full((n,), int(fixed))


def random_bits(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Bernoulli(1/2) bits as float32, drawn from `generator`."""
    return torch.randint(0, 2, shape, generator=generator).float()


def per_sequence_bce_bits(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Scored binary cross-entropy of each sequence in bits: a tensor [B]."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (bce.sum(-1) * mask).sum(0) / math.log(2.0)


def cost_bits(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cost in bits per sequence (the paper's y-axis): a differentiable scalar."""
    return per_sequence_bce_bits(logits, targets, mask).mean()


def per_sequence_bit_errors(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Wrong scored output bits of each sequence after thresholding at 0.5: a tensor [B]."""
    wrong = ((logits > 0) != (targets > 0.5)).float()
    return (wrong.sum(-1) * mask).sum(0)


def bit_errors(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bit errors per sequence, averaged over the batch (a scalar without gradient)."""
    return per_sequence_bit_errors(logits.detach(), targets, mask).mean()
