"""The thread count of this process's compute libraries, set in one place: every training worker,
the planner's contract probe and each speed benchmark run on one thread (a second run takes the
machine's second core), and the driver gets its own counts back afterwards.

Two pools, not one: torch's intra-op threads (and the MKL and OpenMP under them), and the
OpenBLAS that numpy and scipy bring, which the native kernels call for their per-step matrix
products (numba's np.dot goes to scipy's BLAS). OpenBLAS starts a thread per core on load, and
its threads spin waiting for work after each call: with two training jobs on two cores each
job's spinning thread takes a share of the other's core. Measured (session 12, this repository's
2-core Xeon): two NTM priority-sort runs of 300 steps side by side took 80-104 s each with
OpenBLAS's default, 17-20 s each with one thread; one run alone, 17 s either way."""

from __future__ import annotations

from contextlib import contextmanager

import scipy.linalg  # noqa: F401 -- loads scipy's OpenBLAS now, so that the limits below reach it
import torch
from threadpoolctl import threadpool_limits


@contextmanager
def intra_op_threads(threads: int):
    """Use `threads` threads in torch and in every loaded BLAS inside the block, then restore
    the previous counts."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


def worker_threads(threads: int) -> None:
    """intra_op_threads for good, in a worker process that runs nothing else."""
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
