"""Executors: run units of planned RunSpecs and hand each result to the driver, which alone
writes the store.

A unit is one run, or several seeds of one config trained as one batched model (see
benchmarks/harness/batched.py and `plan.group_units`). `local` runs units in this process when
jobs == 1, else in a pool of `jobs` worker processes. Each worker uses `threads` intra-op
threads (default 1): small recurrent models are op-overhead bound and a second thread mostly
adds contention, so the second core is used for a second run instead; and glibc's malloc is
tuned to reuse freed blocks (benchmarks/process/allocator.py). A unit that raises is
returned as status "failed" for each of its runs, with the error; the others go on.
"""

from __future__ import annotations

import multiprocessing
import traceback
from dataclasses import dataclass
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable


from ntm_bench.benchmarks.process.allocator import tune_malloc
from ntm_bench.benchmarks.process.threads import intra_op_threads, worker_threads
from ntm_bench.benchmarks.harness.plan import RunSpec
from ntm_bench.benchmarks.harness.runner import execute, execute_group

Unit = list[RunSpec]


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker executes its units (picklable, so it travels to pool and Ray workers)."""

    checkpoint_dir: str
    device: str = "cpu"
    threads: int = 1
    tensorboard: str | None = None  # folder for live TensorBoard event files, or None


def safe_execute(unit: Unit, options: WorkerOptions) -> list[dict]:
    """Execute a unit, with any exception turned into failed results instead of killing the pool."""
    # Worker processes keep these counts for good; in the driver, run_local restores them.
    worker_threads(options.threads)
    tune_malloc()
    try:
        if len(unit) == 1:
            return [execute(unit[0], options.checkpoint_dir, options.device, options.tensorboard)]
        return execute_group(unit, options.checkpoint_dir, options.device, options.tensorboard)
    except Exception as error:  # report, don't crash the suite: the other runs still matter
        message = "".join(traceback.format_exception_only(type(error), error)).strip()
        return [
            {"run_id": s.run_id, "status": "failed", "error": message, "curves": [], "evals": []}
            for s in unit
        ]


def run_local(
    units: list[Unit],
    options: WorkerOptions,
    on_result: Callable[[RunSpec, dict], None],
    lease: Callable[[Unit], Unit] = lambda unit: unit,
    jobs: int = 1,
) -> None:
    """Execute the part of each unit that `lease` grants, calling `on_result(spec, result)` in
    this process as each finishes. Leases are made one unit at a time, just before it starts,
    so several suite processes on one store share the work instead of one taking all of it."""
    if jobs <= 1:
        with intra_op_threads(options.threads):
            for unit in units:
                leased = lease(unit)
                if leased:
                    for spec, result in zip(leased, safe_execute(leased, options)):
                        on_result(spec, result)
        return
    # spawn, not fork: a forked child inherits the parent's intra-op thread pool state.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))

    def finished(running):
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        return [(future, future.result()) for future in done]

    try:
        drive(
            units,
            lease,
            lambda unit: pool.submit(safe_execute, unit, options),
            finished,
            jobs,
            on_result,
        )
    except KeyboardInterrupt:
        # Workers got the same SIGINT and checkpoint at their next step; wait for them to finish
        # that.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def drive(units: list[Unit], lease, submit, finished, capacity: int, on_result) -> None:
    """Keep `capacity` units in flight: lease the next unit, `submit(unit) -> handle`, and
    hand each result of `finished(running) -> [(handle, results)]` to `on_result`."""
    queue, running = list(units), {}
    while queue or running:
        while queue and len(running) < capacity:
            leased = lease(queue.pop(0))
            if leased:
                running[submit(leased)] = leased
        if not running:
            break
        for handle, results in finished(running):
            for spec, result in zip(running.pop(handle), results):
                on_result(spec, result)


def run_ray(
    units: list[Unit],
    options: WorkerOptions,
    on_result: Callable[[RunSpec, dict], None],
    lease: Callable[[Unit], Unit] = lambda unit: unit,
    address: str | None = None,
    num_cpus: int | None = None,
) -> None:
    """Execute units as Ray tasks (one CPU each, one GPU each on CUDA) on the cluster at
    `address`, or on a local Ray instance when None. Workers return results; this process
    writes the store. `options.checkpoint_dir` must be a path every worker can reach."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: pip install -e '.[cluster]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    gpus = 1 if options.device.startswith("cuda") else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(safe_execute)
    capacity = max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1)))

    def finished(running):
        ready, _ = ray.wait(list(running), num_returns=1)
        return [(ref, ray.get(ref)) for ref in ready]

    try:
        drive(
            units, lease, lambda unit: remote.remote(unit, options), finished, capacity, on_result
        )
    finally:
        if started_here:
            ray.shutdown()
