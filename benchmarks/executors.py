"""Executors: run planned RunSpecs and hand each result to the driver, which alone writes the store.

`local` runs in this process when jobs == 1, else in a pool of `jobs` worker processes. Each
worker uses `threads` intra-op threads (default 1): small recurrent models are op-overhead bound
and a second thread mostly adds contention, so the second core is used for a second run instead.
A run that raises is returned as status "failed" with the error; the others go on.
"""

from __future__ import annotations

import multiprocessing
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
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
    claim: Callable[[RunSpec], bool] = lambda spec: True,
    jobs: int = 1,
    threads: int = 1,
) -> None:
    """Execute the `specs` that `claim` grants, calling `on_result(spec, result)` in this process
    as each finishes. Claims are made one at a time, just before a run starts, so several
    suite processes on one store share the work instead of one of them taking all of it."""
    if jobs <= 1:
        previous = torch.get_num_threads()
        try:
            for spec in specs:
                if claim(spec):
                    on_result(spec, safe_execute(spec, checkpoint_dir, device, threads))
        finally:
            set_threads(previous)
        return
    # spawn, not fork: a forked child inherits the parent's intra-op thread pool state.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    queue, running = list(specs), {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                spec = queue.pop(0)
                if claim(spec):
                    running[pool.submit(safe_execute, spec, checkpoint_dir, device, threads)] = spec
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                on_result(running.pop(future), future.result())
    except KeyboardInterrupt:
        # Workers got the same SIGINT and checkpoint at their next step; wait for them to finish that.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
