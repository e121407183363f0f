"""Executors: run planned RunSpecs and hand each result to the driver, which alone writes the store.

`local` runs in this process when jobs == 1, else in a pool of `jobs` worker processes. Each
worker uses `threads` intra-op threads (default 1): small recurrent models are op-overhead bound
and a second thread mostly adds contention, so the second core is used for a second run instead.
A run that raises is returned as status "failed" with the error; the others go on.
"""

from __future__ import annotations

import multiprocessing
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable

import torch

from benchmarks.plan import RunSpec
from benchmarks.runner import execute


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def safe_execute(spec: RunSpec, checkpoint_dir: str, device: str, threads: int) -> dict:
    """`execute`, with any exception turned into a failed result instead of killing the pool."""
    set_threads(threads)
    try:
        return execute(spec, checkpoint_dir, device)
    except Exception as error:  # report, don't crash the suite: the other runs still matter
        lines = traceback.format_exception_only(type(error), error)
        return {"run_id": spec.run_id, "status": "failed", "error": "".join(lines).strip(), "curves": [], "evals": []}


def run_local(
    specs: list[RunSpec],
    checkpoint_dir: str,
    device: str,
    on_result: Callable[[RunSpec, dict], None],
    jobs: int = 1,
    threads: int = 1,
) -> None:
    """Execute `specs`, calling `on_result(spec, result)` in this process as each finishes."""
    if jobs <= 1 or len(specs) <= 1:
        previous = torch.get_num_threads()
        try:
            for spec in specs:
                on_result(spec, safe_execute(spec, checkpoint_dir, device, threads))
        finally:
            set_threads(previous)
        return
    # spawn, not fork: a forked child inherits the parent's intra-op thread pool state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(safe_execute, spec, checkpoint_dir, device, threads): spec for spec in specs}
        try:
            for future in as_completed(futures):
                on_result(futures[future], future.result())
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
