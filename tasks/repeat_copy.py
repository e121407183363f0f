"""Repeat copy (Graves et al. 2014, section 4.2): replay a sequence R times, then an end marker.

Timeline for length L = 2, repeats R = 2, width W = 8:

    step          0    1    2    3    4    5    6    7    8
    input bits    x0   x1   .    .    .    .    .    .    .      W channels
    delimiter     .    .    1    .    .    .    .    .    .      1 channel
    repeat count  .    .    .    r    .    .    .    .    .      1 channel, r = (R - mean) / std
    target bits   .    .    .    .    x0   x1   x0   x1   .      W channels
    end marker    .    .    .    .    .    .    .    .    1      1 extra output channel
    mask          0    0    0    0    1    1    1    1    1

T = L + 2 + R L + 1. Choices the paper leaves open, made explicit here:
- the delimiter and the repeat count arrive on separate steps (the count after the delimiter);
- the count is normalized with `count_mean` / `count_std`, by default the mean and standard
  deviation of the uniform training distribution of R (mean 5.5, std 2.87 for 1..10), so the
  training counts have mean 0 and variance 1 as in the paper.
"""

from __future__ import annotations

import math

import torch

from ntm_bench.tasks.base import Batch, Task, random_bits, sizes


class RepeatCopy(Task):
    """The repeat copy task; `length` and `repeats` are its generalization axes."""

    axes = ("length", "repeats")

    def __init__(
        self,
        width: int = 8,
        min_length: int = 1,
        max_length: int = 10,
        min_repeats: int = 1,
        max_repeats: int = 10,
        count_mean: float | None = None,
        count_std: float | None = None,
    ):
        if width < 1 or not 1 <= min_length <= max_length or not 1 <= min_repeats <= max_repeats:
            raise ValueError(
                "repeat_copy needs width >= 1, 1 <= min_length <= max_length and "
                f"1 <= min_repeats <= max_repeats, got width={width}, lengths "
                f"{min_length}..{max_length}, repeats {min_repeats}..{max_repeats}"
            )
        self.width = width
        self.min_length, self.max_length = min_length, max_length
        self.min_repeats, self.max_repeats = min_repeats, max_repeats
        # Mean and std of the discrete uniform distribution on [min_repeats, max_repeats].
        n = max_repeats - min_repeats + 1
        self.count_mean = (min_repeats + max_repeats) / 2 if count_mean is None else count_mean
        if count_std is not None and not count_std > 0:
            raise ValueError(f"count_std must be positive, got {count_std!r}")
        self.count_std = math.sqrt((n * n - 1) / 12) if count_std is None else count_std
        if self.count_std == 0:
            self.count_std = 1.0  # a single training count: nothing to scale
        self.input_size = width + 2
        self.output_size = width + 1
        # The end marker is scored apart from the copied bits: beyond the training repeats the
        # paper's NTM keeps copying but misplaces the marker, and one total would hide which.
        self.channels = {"content": slice(0, width), "end_marker": slice(width, width + 1)}

    def memory_needed(self, length: int | None = None, repeats: int | None = None) -> int:
        return length or self.max_length  # the sequence is stored once and replayed from memory

    def trivial_costs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Task.trivial_costs, and "memoryless": the end marker placed exactly (it needs only
        the length and the count, no content) and every content bit 0.5, so each scored step
        but the last costs W bits (the marker's step costs nothing: content 0, marker 1)."""
        steps = batch.mask.sum(0)
        return {**super().trivial_costs(batch), "memoryless": (steps - 1) * self.width}

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        length: int | None = None,
        repeats: int | None = None,
    ) -> Batch:
        self.check_size({"length": length, "repeats": repeats})
        lengths = sizes(length, self.min_length, self.max_length, batch_size, generator)
        counts = sizes(repeats, self.min_repeats, self.max_repeats, batch_size, generator)
        longest = int(lengths.max())
        ends = lengths + 2 + counts * lengths  # step of each end marker
        steps = int(ends.max()) + 1
        bits = random_bits((longest, batch_size, self.width), generator)
        t = torch.arange(steps)[:, None]
        bits = bits * (t[:longest] < lengths).unsqueeze(-1)

        inputs = torch.zeros(steps, batch_size, self.input_size)
        inputs[:longest, :, : self.width] = bits
        inputs[:, :, self.width] = (t == lengths).float()
        inputs[:, :, self.width + 1] = (
            (t == lengths + 1).float() * (counts - self.count_mean) / self.count_std
        )

        replay = (t >= lengths + 2) & (t < ends)
        source = ((t - lengths - 2).clamp(min=0) % lengths).clamp(max=longest - 1)
        targets = torch.zeros(steps, batch_size, self.output_size)
        targets[:, :, : self.width] = torch.gather(
            bits, 0, source.unsqueeze(-1).expand(-1, -1, self.width)
        ) * replay.unsqueeze(-1)
        targets[:, :, self.width] = (t == ends).float()
        mask = ((t >= lengths + 2) & (t <= ends)).float()
        return Batch(inputs, targets, mask)
