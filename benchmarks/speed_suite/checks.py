"""What the speed suite refuses before it measures anything (run_suite.py bench checks these
first, run_bench its own numbers): minutes of timing must not end in an error a flag could
have shown at once."""

from __future__ import annotations

import math

from ntm_bench.benchmarks.harness.config import ConfigError
from ntm_bench.benchmarks.process.destinations import check_destination
from ntm_bench.benchmarks.harness.values import MAX_INT

# torch.set_num_threads takes up to 2**31 - 1 and then tries to start them all; no machine this
# suite runs on has a thousand cores, so a larger --threads is a typo
MAX_THREADS = 1024
MAX_SEED = MAX_INT  # the bound of every integer of a profile


class BenchError(ConfigError):
    """A bench option, store or output file that cannot work; the message is one line naming
    the flag or file. Raised before anything is measured."""


def check_destinations(store_path: str | None, json_path: str | None, threads: int = 1) -> None:
    """What `run_suite.py bench` checks before minutes of measuring: --threads a count torch can
    use, --json a file that can be written, and --store a results store that opens and takes a
    write (a read-only file opens and fails only at the first write, after the measuring). The
    store is checked last, since opening it creates it. BenchError naming the flag or file."""
    check_threads(threads)
    if json_path:
        check_json(json_path)
    if store_path:
        check_store(store_path)


def check_threads(threads) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise BenchError(f"--threads must be a whole number from 1 to {MAX_THREADS}, got {threads}")


def check_json(json_path: str) -> None:
    """--json: a file, or one that can be made, that can be written."""
    try:
        check_destination("--json", json_path, "file")
    except ValueError as error:
        raise BenchError(str(error)) from None


def check_store(store_path: str) -> None:
    """--store opens as a results store (created if missing) that takes writes: opening for
    writing probes that (results.schema.probe_write), since a read-only file would open and fail
    only at the first row, after the measuring."""
    from ntm_bench.results.schema import StoreError
    from ntm_bench.results.store import Store

    try:
        Store(store_path).close()
    except StoreError as error:
        raise BenchError(str(error)) from None


def check_run_options(threads, max_mem_mb, seed) -> None:
    """run_bench's own numbers: ValueError (BenchError) naming the one that cannot work."""
    check_threads(threads)
    if max_mem_mb is not None and (
        isinstance(max_mem_mb, bool)
        or not isinstance(max_mem_mb, (int, float))
        or math.isnan(max_mem_mb)
        or max_mem_mb <= 0
    ):
        # inf is no budget at all (measure_config skips the estimate)
        raise BenchError(f"max_mem_mb must be a number above 0 (inf: no budget), got {max_mem_mb}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise BenchError(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed}")
