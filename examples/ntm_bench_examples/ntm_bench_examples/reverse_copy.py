"""Reverse copy: store a sequence of random bit vectors, then replay it last vector first.

Timeline for length L = 3 and width W (time runs left to right):

    step        0    1    2    3    4    5    6
    input bits  x0   x1   x2   .    .    .    .      W channels
    delimiter   .    .    .    1    .    .    .      1 channel
    target      .    .    .    .    x2   x1   x0     W channels
    mask        0    0    0    0    1    1    1

A plugin task: it subclasses ntm-bench's Task, names its generalization axes and draws every
random number from the generator it is given.
"""

import torch

from ntm_bench.tasks.base import Batch, Task, random_bits, sizes


class ReverseCopy(Task):
    """Copy in reverse order; `length` is its generalization axis."""

    axes = ("length",)

    def __init__(self, width: int = 8, min_length: int = 1, max_length: int = 20):
        if width < 1 or not 1 <= min_length <= max_length:
            raise ValueError(
                "reverse_copy needs width >= 1 and 1 <= min_length <= max_length, got "
                f"width={width}, lengths {min_length}..{max_length}"
            )
        self.width, self.min_length, self.max_length = width, min_length, max_length
        self.input_size, self.output_size = width + 1, width

    def memory_needed(self, length: int | None = None) -> int:
        # every vector is stored before the last one comes back first
        return length or self.max_length

    def sample(
        self, batch_size: int, generator: torch.Generator, length: int | None = None
    ) -> Batch:
        self.check_size({"length": length})
        lengths = sizes(length, self.min_length, self.max_length, batch_size, generator)
        longest = int(lengths.max())
        steps = 2 * longest + 1
        bits = random_bits((longest, batch_size, self.width), generator)
        t = torch.arange(steps)[:, None]
        bits = bits * (t[:longest] < lengths).unsqueeze(-1)
        inputs = torch.zeros(steps, batch_size, self.input_size)
        inputs[:longest, :, : self.width] = bits
        inputs[:, :, self.width] = (t == lengths).float()
        mask = ((t > lengths) & (t <= 2 * lengths)).float()
        source = (2 * lengths - t).clamp(0, longest - 1)  # output step t replays input 2L - t
        targets = torch.gather(
            bits, 0, source.unsqueeze(-1).expand(-1, -1, self.width)
        ) * mask.unsqueeze(-1)
        return Batch(inputs, targets, mask)
