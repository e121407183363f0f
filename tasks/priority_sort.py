"""Priority sort (Graves et al. 2014, section 4.5): output the highest-priority vectors in order.

The input is `length` random bit vectors, each with a scalar priority uniform in [-1, 1] on its own
channel, then a delimiter. The target is the K = round(keep_fraction * length) vectors of highest
priority, highest first, produced right after the delimiter with no input meanwhile.

Timeline for length n = 3, K = 2, priorities p1 > p0 > p2 (time runs left to right):

    step          0    1    2    3    4    5
    input bits    x0   x1   x2   .    .    .      W channels
    priority      p0   p1   p2   .    .    .      1 channel, uniform in [-1, 1)
    delimiter     .    .    .    1    .    .      1 channel
    target        .    .    .    .    x1   x0     W channels
    mask          0    0    0    0    1    1

T = n + 1 + K: 10 input channels and 8 output channels at the paper's W = 8, and 16 of 20
vectors kept at the paper's keep_fraction = 0.8.

Choices the paper leaves open, made explicit here:
- the delimiter is a step of its own on its own channel (no bits, priority 0);
- the target is in descending priority order (the highest first); ties, which have probability
  ~1e-5 per sequence with float32 priorities, keep input order;
- K = round(keep_fraction * n) with halves rounded up, and at least 1: evaluating longer inputs
  keeps the same fraction (20 -> 16, 30 -> 24, 40 -> 32).
In a batch, lengths are drawn per sequence, uniform in [min_length, max_length], and shorter
sequences are padded at the end.
"""

from __future__ import annotations

import torch

from ntm_bench.tasks.base import Batch, Task, random_bits, sizes


class PrioritySort(Task):
    """The priority sort task; `length` (number of input vectors) is its axis."""

    axes = ("length",)

    def __init__(
        self, width: int = 8, min_length: int = 20, max_length: int = 20, keep_fraction: float = 0.8
    ):
        if width < 1:
            raise ValueError(f"priority_sort needs width >= 1, got width={width}")
        if not 1 <= min_length <= max_length:
            raise ValueError(
                f"priority_sort needs 1 <= min_length <= max_length, got min_length={min_length}, "
                f"max_length={max_length}"
            )
        if not 0 < keep_fraction <= 1:
            raise ValueError(
                f"priority_sort needs 0 < keep_fraction <= 1, got keep_fraction={keep_fraction}"
            )
        self.width, self.min_length, self.max_length = width, min_length, max_length
        self.keep_fraction = float(keep_fraction)
        self.input_size = width + 2
        self.output_size = width

    def kept(self, lengths: torch.Tensor) -> torch.Tensor:
        """K for each length: round(keep_fraction * n), halves up, at least 1 (a long tensor)."""
        # The small epsilon keeps 0.8 * 20 = 16.000000000000004 and the like from floating point
        # noise.
        return torch.floor(lengths.double() * self.keep_fraction + 0.5 + 1e-9).long().clamp(min=1)

    def memory_needed(self, length: int | None = None) -> int:
        return length or self.max_length  # every vector is stored until its rank is known

    def trivial_costs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Task.trivial_costs, and "one_item": a predictor that keeps only the highest-priority
        vector seen (a running maximum: one vector of memory) outputs it exactly first and 0.5
        for every later bit, so it costs W bits less than chance."""
        chance = super().trivial_costs(batch)["chance"]
        return {"chance": chance, "one_item": chance - self.width}

    def sample(
        self, batch_size: int, generator: torch.Generator, length: int | None = None
    ) -> Batch:
        self.check_size({"length": length})
        lengths = sizes(length, self.min_length, self.max_length, batch_size, generator)
        longest = int(lengths.max())
        keep = self.kept(lengths)
        steps = int((lengths + 1 + keep).max())
        W = self.width
        t = torch.arange(steps)[:, None]
        real = t[:longest] < lengths  # [n, B]
        bits = random_bits((longest, batch_size, W), generator) * real.unsqueeze(-1)
        priority = torch.where(
            real, 2 * torch.rand(longest, batch_size, generator=generator) - 1, 0.0
        )

        # Padding steps sort last (priority -inf); stable, so ties keep input order.
        order = torch.sort(
            priority.masked_fill(~real, float("-inf")), dim=0, descending=True, stable=True
        ).indices
        rank = (t - lengths - 1).clamp(0, longest - 1)  # which sorted vector each step shows
        source = torch.gather(order, 0, rank)  # [T, B] input step
        mask = ((t > lengths) & (t <= lengths + keep)).float()
        targets = torch.gather(bits, 0, source.unsqueeze(-1).expand(-1, -1, W)) * mask.unsqueeze(-1)

        inputs = torch.zeros(steps, batch_size, self.input_size)
        inputs[:longest, :, :W] = bits
        inputs[:longest, :, W] = priority
        inputs[:, :, W + 1] = (t == lengths).float()
        return Batch(inputs, targets, mask)
