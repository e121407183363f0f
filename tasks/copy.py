"""Copy (Graves et al. 2014, section 4.1): store a sequence of random bit vectors, then replay it.

Timeline for a sequence of length L = 3 and width W = 8 (time runs left to right):

    step        0    1    2    3    4    5    6
    input bits  x0   x1   x2   .    .    .    .      W channels
    delimiter   .    .    .    1    .    .    .      1 channel
    target      .    .    .    .    x0   x1   x2     W channels
    mask        0    0    0    0    1    1    1

T = 2 L + 1. No input arrives while the target is produced. In a batch, lengths are drawn per
sequence, uniform in [min_length, max_length], and shorter sequences are padded at the end.
"""

from __future__ import annotations

import torch

from ntm_bench.tasks.base import Batch, Task, random_bits, sizes


class Copy(Task):
    """The copy task; `length` is its generalization axis."""

    axes = ("length",)

    def __init__(self, width: int = 8, min_length: int = 1, max_length: int = 20):
        if width < 1 or min_length < 1 or max_length < min_length:
            raise ValueError(
                f"copy needs width >= 1 and 1 <= min_length <= max_length, got width={width}, "
                f"min_length={min_length}, max_length={max_length}"
            )
        self.width, self.min_length, self.max_length = width, min_length, max_length
        self.input_size = width + 1
        self.output_size = width

    def memory_needed(self, length: int | None = None) -> int:
        return length or self.max_length  # every input vector must be stored before it is replayed

    def sample(
        self, batch_size: int, generator: torch.Generator, length: int | None = None
    ) -> Batch:
        self.check_size({"length": length})
        lengths = sizes(length, self.min_length, self.max_length, batch_size, generator)
        longest = int(lengths.max())
        steps = 2 * longest + 1
        bits = random_bits((longest, batch_size, self.width), generator)
        t = torch.arange(steps)[:, None]  # [T, 1] against lengths [B]
        bits = bits * (t[:longest] < lengths).unsqueeze(-1)  # zero past each sequence's end

        inputs = torch.zeros(steps, batch_size, self.input_size)
        inputs[:longest, :, : self.width] = bits
        inputs[:, :, self.width] = (t == lengths).float()

        mask = ((t > lengths) & (t <= 2 * lengths)).float()
        source = (t - lengths - 1).clamp(0, longest - 1)  # which input step each output replays
        targets = torch.gather(bits, 0, source.unsqueeze(-1).expand(-1, -1, self.width))
        targets = targets * mask.unsqueeze(-1)
        return Batch(inputs, targets, mask)
