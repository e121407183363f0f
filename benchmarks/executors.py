"""Executors: run units of planned RunSpecs and hand each result to the driver, which alone
writes the store.

A unit is one run, or several seeds of one config trained as one batched model (see
benchmarks/batched.py and `plan.group_units`). `local` runs units in this process when
jobs == 1, else in a pool of `jobs` worker processes. Each worker uses `threads` intra-op
threads (default 1): small recurrent models are op-overhead bound and a second thread mostly
adds contention, so the second core is used for a second run instead. A unit that raises is
returned as status "failed" for each of its runs, with the error; the others go on.
"""

from __future__ import annotations

import multiprocessing
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable

import torch

from benchmarks.plan import RunSpec
from benchmarks.runner import execute, execute_group

Unit = list[RunSpec]


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def safe_execute(unit: Unit, checkpoint_dir: str, device: str, threads: int) -> list[dict]:
    """Execute a unit, with any exception turned into failed results instead of killing the pool."""
    set_threads(threads)
    try:
        if len(unit) == 1:
            return [execute(unit[0], checkpoint_dir, device)]
        return execute_group(unit, checkpoint_dir, device)
    except Exception as error:  # report, don't crash the suite: the other runs still matter
        message = "".join(traceback.format_exception_only(type(error), error)).strip()
        return [{"run_id": s.run_id, "status": "failed", "error": message, "curves": [], "evals": []} for s in unit]


def run_local(
    units: list[Unit],
    checkpoint_dir: str,
    device: str,
    on_result: Callable[[RunSpec, dict], None],
    claim: Callable[[Unit], Unit] = lambda unit: unit,
    jobs: int = 1,
    threads: int = 1,
) -> None:
    """Execute the part of each unit that `claim` grants, calling `on_result(spec, result)` in
    this process as each finishes. Claims are made one unit at a time, just before it starts,
    so several suite processes on one store share the work instead of one taking all of it."""
    if jobs <= 1:
        previous = torch.get_num_threads()
        try:
            for unit in units:
                claimed = claim(unit)
                if claimed:
                    for spec, result in zip(claimed, safe_execute(claimed, checkpoint_dir, device, threads)):
                        on_result(spec, result)
        finally:
            set_threads(previous)
        return
    # spawn, not fork: a forked child inherits the parent's intra-op thread pool state.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    queue, running = list(units), {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                claimed = claim(queue.pop(0))
                if claimed:
                    running[pool.submit(safe_execute, claimed, checkpoint_dir, device, threads)] = claimed
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                for spec, result in zip(running.pop(future), future.result()):
                    on_result(spec, result)
    except KeyboardInterrupt:
        # Workers got the same SIGINT and checkpoint at their next step; wait for them to finish that.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
