"""Associative recall (Graves et al. 2014, section 4.3): given an item, produce the one after it.

An item is `item_length` vectors of `width` random bits. The items of a list are shown one after
another, each opened by an item delimiter; then a query delimiter, a copy of one item of the list
(never the last), and a second query delimiter that closes the query. The target is the item that
followed the queried one in the list, produced right after the closing query delimiter, with no
input meanwhile.

Timeline for n = 2 items a, b of item_length L = 2 (a = a0 a1), query a, so the target is b:

    step          0    1    2    3    4    5    6    7    8    9    10   11
    input bits    .    a0   a1   .    b0   b1   .    a0   a1   .    .    .      W channels
    item delim    1    .    .    1    .    .    .    .    .    .    .    .      1 channel
    query delim   .    .    .    .    .    .    1    .    .    1    .    .      1 channel
    target        .    .    .    .    .    .    .    .    .    .    b0   b1     W channels
    mask          0    0    0    0    0    0    0    0    0    0    1    1

T = n (L + 1) + 2 L + 2, so 8 input channels and 6 output channels at the paper's W = 6.

Choices the paper leaves open, made explicit here:
- each item is opened by an item delimiter (the next item's delimiter, or the query delimiter,
  closes it); the query is framed by query delimiters on both sides, as in the paper's figure;
- the queried item is uniform over all items but the last;
- `distinct=True`: the items of one list are all different (duplicates are redrawn), so the
  answer is unique; with the paper's 18-bit items a duplicate is rare anyway.
In a batch, the number of items is drawn per sequence, uniform in [min_items, max_items], and
shorter sequences are padded at the end.
"""

from __future__ import annotations

import torch

from ntm_bench.tasks.base import Batch, Task, randint, random_bits


class AssociativeRecall(Task):
    """The associative recall task; `items` (the number of items in the list) is its axis."""

    axes = ("items",)

    def __init__(
        self,
        width: int = 6,
        item_length: int = 3,
        min_items: int = 2,
        max_items: int = 6,
        distinct: bool = True,
    ):
        if width < 1:
            raise ValueError(f"associative_recall needs width >= 1, got width={width}")
        if item_length < 1:
            raise ValueError(
                f"associative_recall needs item_length >= 1, got item_length={item_length}"
            )
        if not 2 <= min_items <= max_items:
            raise ValueError(
                "associative_recall needs 2 <= min_items <= max_items (the query is never the last "
                f"item, so a list has at least 2), got min_items={min_items}, max_items={max_items}"
            )
        self.width, self.item_length = width, item_length
        self.min_items, self.max_items = min_items, max_items
        self.distinct = bool(distinct)
        self._check_distinct(max_items, "max_items")
        self.input_size = width + 2
        self.output_size = width

    def _check_distinct(self, items: int, name: str) -> None:
        if self.distinct and items > 2 ** min(self.width * self.item_length, 62):
            raise ValueError(
                f"associative_recall: {name}={items} distinct items do not exist with "
                f"width={self.width}, item_length={self.item_length} (set distinct=False)"
            )

    def memory_needed(self, items: int | None = None) -> int:
        return (
            items or self.max_items
        ) * self.item_length  # every vector of every item, to be found again

    def sample(
        self, batch_size: int, generator: torch.Generator, items: int | None = None
    ) -> Batch:
        self.check_size({"items": items})
        if items is None:
            counts = randint(self.min_items, self.max_items, batch_size, generator)
        else:
            if int(items) < 2:
                raise ValueError(
                    f"items must be at least 2 (one to query, one to recall), got {items}"
                )
            self._check_distinct(int(items), "items")
            counts = torch.full((batch_size,), int(items))
        n, L, W = int(counts.max()), self.item_length, self.width
        lists = self._draw_items(batch_size, n, counts, generator)  # [B, n, L, W]
        # uniform in [0, n_b - 2]; the clamp guards against float rounding up at the top
        query = torch.minimum(
            (torch.rand(batch_size, generator=generator) * (counts - 1)).long(), counts - 2
        )

        span = L + 1  # one item and its opening delimiter
        starts = counts * span  # [B] step of the first query delimiter
        steps = n * span + 2 * L + 2
        t = torch.arange(steps)[:, None]  # [T, 1] against [B]
        # item and position within it, in the list part
        k, r = (
            (t // span).clamp(max=n - 1),
            t % span,
        )
        in_list = t < starts
        q = t - starts  # position in the query part

        # Item bits at each step: list item k (position r - 1), the queried item during the query,
        # the next item during the answer; which item and which vector are gathered per step.
        which = torch.where(in_list, k, torch.where(q <= L + 1, query, query + 1))
        pos = torch.where(in_list, r - 1, torch.where(q <= L + 1, q - 1, q - L - 2)).clamp(0, L - 1)
        flat = lists.reshape(batch_size, n * L, W)
        picked = torch.gather(
            flat, 1, (which * L + pos).T.unsqueeze(-1).expand(-1, -1, W)
        ).transpose(0, 1)

        show = (in_list & (r > 0)) | ((q >= 1) & (q <= L))
        answer = (q >= L + 2) & (q <= 2 * L + 1)
        inputs = torch.zeros(steps, batch_size, self.input_size)
        inputs[:, :, :W] = picked * show.unsqueeze(-1)
        inputs[:, :, W] = (in_list & (r == 0)).float()
        inputs[:, :, W + 1] = ((q == 0) | (q == L + 1)).float()
        mask = answer.float()
        targets = picked * mask.unsqueeze(-1)
        return Batch(inputs, targets, mask)

    def _draw_items(
        self, batch_size: int, n: int, counts: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Random items [B, n, L, W]; with `distinct`, every item of a list differs from the earlier
        ones."""
        L, W = self.item_length, self.width
        lists = random_bits((batch_size, n, L, W), generator)
        if not self.distinct:
            return lists
        real = torch.arange(n) < counts[:, None]  # [B, n]
        earlier = torch.ones(n, n).tril(-1).bool()  # j < i
        while True:
            x = lists.reshape(batch_size, n, L * W)
            # Hamming distance between items i and j, exact in float: 0 means equal.
            distance = x @ (1 - x).transpose(1, 2) + (1 - x) @ x.transpose(1, 2)  # [B, n, n]
            clash = ((distance == 0) & earlier & real[:, None, :]).any(-1) & real  # [B, n]
            if not clash.any():
                return lists
            # Redraw only the clashing items (a few steps of a loop that usually runs once).
            fresh = random_bits((int(clash.sum()), L, W), generator)
            lists[clash] = fresh
