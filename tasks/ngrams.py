"""Dynamic n-grams (Graves et al. 2014, section 4.4): predict the next bit of a random 6-gram
source.

Each sequence gets a fresh lookup table: for each of the 2^order contexts (the `order` previous
bits), P(next bit = 1) is drawn from Beta(1/2, 1/2). The sequence is `length` bits x0 .. x_{n-1}
drawn from that table, and at every step the model predicts the current bit from the ones before.

Timeline for length n = 4 (time runs left to right):

    step            0    1    2    3
    previous bit    .    x0   x1   x2      channel 0: x_{t-1}
    start           1    .    .    .       channel 1: 1 on the first step only
    target          x0   x1   x2   x3      1 channel
    mask            1    1    1    1       (0 on the first `order` steps if score_first=False)

The start channel makes the first step unambiguous: without it, "no previous bit" would read as a
previous bit of 0.

Choices the paper leaves open, made explicit here:
- the first `order` bits have no full context; they are uniform random bits (Bernoulli(1/2)), so
  the best prediction there is 1/2 at a cost of exactly 1 bit each;
- `score_first=True` scores all `length` predictions (the optimum is then 133.14 bits per
  sequence at length 200, computed exactly in tests/test_tasks_more.py); `score_first=False` scores
  only steps t >= order (128.14);
- the context of step t is the integer sum_k x_{t-k} 2^(k-1), k = 1..order (any fixed bijection
  gives the same task).
Beta(1/2, 1/2) is the arcsine law, drawn by inverse CDF as sin(pi u / 2)^2 with u uniform, so the
task's generator is the only source of randomness.

`optimal_cost(batch)` is the Bayes-optimal cost of each sequence of a batch: the predictor
(N1 + 1/2) / (N1 + N0 + 1), where N1 and N0 count the ones and zeros that followed the same
context earlier in the same sequence, and 1/2 on the steps without full context.
"""

from __future__ import annotations

import math

import torch

from ntm_bench.tasks.base import Batch, Task, randint


def arcsine(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Beta(1/2, 1/2) samples (float64) by inverse CDF: F(x) = (2/pi) asin(sqrt(x)), so
    F^-1(u) = sin(pi u / 2)^2 for u uniform in [0, 1)."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return torch.sin(math.pi / 2 * u) ** 2


class NGrams(Task):
    """The dynamic n-grams task; `length` (bits per sequence) is its axis."""

    axes = ("length",)
    input_size = 2
    output_size = 1

    def __init__(
        self, order: int = 5, min_length: int = 200, max_length: int = 200, score_first: bool = True
    ):
        if not 1 <= order <= 16:
            raise ValueError(
                f"ngrams needs 1 <= order <= 16 (2^order contexts per sequence), got order={order}"
            )
        if not 1 <= min_length <= max_length:
            raise ValueError(
                f"ngrams needs 1 <= min_length <= max_length, got min_length={min_length}, "
                f"max_length={max_length}"
            )
        if not score_first and min_length <= order:
            raise ValueError(
                "ngrams with score_first=False needs min_length > order, got "
                f"min_length={min_length}, order={order}"
            )
        self.order, self.min_length, self.max_length = order, min_length, max_length
        self.score_first = bool(score_first)

    def sample(
        self, batch_size: int, generator: torch.Generator, length: int | None = None
    ) -> Batch:
        self.check_size({"length": length})
        if length is None:
            lengths = randint(self.min_length, self.max_length, batch_size, generator)
        else:
            if not self.score_first and int(length) <= self.order:
                raise ValueError(
                    f"length must exceed order={self.order} when score_first=False, got {length}"
                )
            lengths = torch.full((batch_size,), int(length))
        steps = int(lengths.max())
        table = arcsine((batch_size, 2**self.order), generator)  # [B, contexts]: P(next = 1)
        draws = torch.rand(steps, batch_size, generator=generator, dtype=torch.float64)
        bits = torch.zeros(steps, batch_size)
        context = torch.zeros(batch_size, dtype=torch.long)
        top = 2**self.order
        for t in range(steps):  # the source is sequential in t
            p = table.gather(1, context[:, None])[:, 0] if t >= self.order else 0.5
            bits[t] = (draws[t] < p).float()
            context = (2 * context + bits[t].long()) % top  # newest bit lowest
        t = torch.arange(steps)[:, None]
        real = t < lengths
        bits = bits * real
        inputs = torch.zeros(steps, batch_size, self.input_size)
        inputs[1:, :, 0] = bits[:-1] * real[1:]  # padding gets no last bit
        inputs[0, :, 1] = 1.0
        mask = (real & ((t >= self.order) | self.score_first)).float()
        targets = (bits * mask).unsqueeze(-1)
        return Batch(inputs, targets, mask)

    def optimal_cost(self, batch: Batch) -> torch.Tensor:
        """Bayes-optimal cost in bits of each sequence of `batch` (a float64 tensor [B]).

        Reads the bit stream from the batch alone (targets where scored, else the next step's
        previous-bit input) and sums -log2 of the probability the optimal predictor gives each
        scored bit. Counts "earlier in the same context" without a loop over time: the steps are
        stably sorted by (sequence, context), so each context's steps are contiguous and in time
        order, and running sums within each group are the counts N1 and N1 + N0 before each step.
        """
        inputs, targets, mask = batch
        steps, batch_size = mask.shape
        scored = mask > 0
        shifted = torch.zeros(steps, batch_size)
        shifted[:-1] = inputs[1:, :, 0]
        stream = torch.where(scored, targets[:, :, 0], shifted).T.long()  # [B, T]
        top = 2**self.order
        context = torch.zeros(batch_size, steps, dtype=torch.long)
        for k in range(1, self.order + 1):  # newest bit lowest
            context[:, k:] += stream[:, :-k] << (k - 1)
        full = torch.arange(steps) >= self.order  # steps with a full context
        key = torch.where(full, torch.arange(batch_size)[:, None] * top + context, -1).reshape(-1)
        order = torch.sort(key, stable=True).indices
        key, bit = key[order], stream.reshape(-1)[order].double()
        position = torch.arange(key.numel())
        new_group = torch.ones_like(key, dtype=torch.bool)
        new_group[1:] = key[1:] != key[:-1]
        group_start = torch.cummax(torch.where(new_group, position, 0), 0).values
        ones_before = torch.cumsum(bit, 0) - bit  # exclusive running sum
        ones = ones_before - ones_before[group_start]
        seen = (position - group_start).double()
        p_one = (ones + 0.5) / (seen + 1.0)
        p = torch.where(bit == 1, p_one, 1.0 - p_one)
        p = torch.where(key >= 0, p, 0.5)  # no full context: 1/2
        bits_cost = torch.empty_like(p)
        bits_cost[order] = -torch.log2(p)
        return (bits_cost.reshape(batch_size, steps) * scored.T).sum(1)
