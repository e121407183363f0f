"""Shared fixtures and helpers: tests run single-threaded, like the suite's workers, so results are exact."""

import pytest
import torch

from benchmarks.executors import intra_op_threads


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def interrupted_at_first_checkpoint(call) -> list:
    """Run `call()` with checkpoint writes that succeed and then raise KeyboardInterrupt, as a
    user's Ctrl-C right after a checkpoint would; returns the steps that were saved."""
    from benchmarks import runner

    saved = []
    original = runner.save_checkpoint

    def crash(path, snap):
        original(path, snap)
        saved.append(snap["step"])
        raise KeyboardInterrupt

    runner.save_checkpoint = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        runner.save_checkpoint = original
    return saved


def snapshot(store_path):
    """Everything in a store but timings: runs' results, curves and evals, sorted (the crash tests
    compare an interrupted-then-rerun suite with an uninterrupted one by it)."""
    from results.store import Store

    store = Store(store_path)
    runs = store.runs()[["run_id", "status", "converged_step", "final_cost_bits", "final_bit_errors", "n_params"]]
    curves = store.curves().drop(columns=["wall_s"])
    evals = store.evals()
    store.close()
    return runs.to_dict("records"), curves.to_dict("records"), evals.to_dict("records")
