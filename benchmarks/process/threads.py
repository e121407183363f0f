"""The intra-op thread count of this process, set for a block: every training worker, the
planner's contract probe and each speed benchmark run on one thread (a second run takes the
machine's second core), and the driver gets its own count back afterwards."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(threads: int):
    """Use `threads` intra-op threads inside the block, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
