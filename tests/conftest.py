"""Shared fixtures: tests run single-threaded, like the suite's workers, so results are exact."""

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
