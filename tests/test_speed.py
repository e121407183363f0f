"""pytest-benchmark speed suite: one training step (forward, cost_bits, backward, Adam step) of
every registered model at batch 1 and 16, at the paper's copy configuration (41 steps; NTM and
DNC controller 100, memory 128 x 20; LSTM 3 x 256), and of the torch.nn.LSTM(9, 256) reference,
on the fixed copy batches of benchmarks/speed_suite/configs.py, one intra-op thread. The default
tests collect it with timing off (pyproject.toml's --benchmark-disable: each case's step runs
once, so a model that breaks here fails CI); to time it:

    python -m pytest tests/test_speed.py --benchmark-enable --benchmark-only --benchmark-autosave
    # ... change something, then against the last saved run:
    python -m pytest tests/test_speed.py --benchmark-enable --benchmark-only --benchmark-compare

NTM_BENCH_DEVICE=cuda runs it on a GPU (synchronized after every step). The test ids
(test_train_step[ntm-b16]) are stable, so runs compare across commits; extra_info carries the
sequences per second and the sizes. run_suite.py --bench (benchmarks/speed_suite/bench.py) is the
fuller suite: forward mode, compiled variants, sweeps and ratios to the reference.
"""

import os

import pytest
import torch

from ntm_bench.benchmarks.process.allocator import tune_malloc
from ntm_bench.benchmarks.speed_suite.timing import make_step, sync
from ntm_bench.benchmarks.speed_suite.configs import (
    PAPER_SIZES,
    REFERENCE,
    build,
    copy_batch,
    model_params,
)
from ntm_bench.models import MODELS

DEVICE = torch.device(os.environ.get("NTM_BENCH_DEVICE", "cpu"))
STEPS = 41  # copy length 20, delimiter, 20 outputs
BURN_IN = 2  # untimed steps before pytest-benchmark's own rounds


@pytest.fixture(autouse=True)
def tuned_malloc():
    # as in training workers and run_suite.py --bench: see benchmarks/process/allocator.py (the
    # one intra-op thread is conftest.py's, as for every test)
    tune_malloc()


def train_step(name: str, batch: int):
    """(a callable doing one synchronized training step, the model's parameter count)."""
    params = {} if name == REFERENCE else model_params(name, PAPER_SIZES, None)
    model = build(name, params, DEVICE, seed=0)
    step, _ = make_step(model, copy_batch(batch, STEPS, DEVICE, seed=0), "train")

    def run():
        step()
        sync(DEVICE)

    return run, sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("batch", [1, 16], ids=lambda b: f"b{b}")
@pytest.mark.parametrize("name", [REFERENCE, *MODELS])
def test_train_step(benchmark, name, batch):
    run, n_params = train_step(name, batch)
    for _ in range(BURN_IN):
        run()
    benchmark.group = f"train step, batch {batch}, {STEPS} steps"
    benchmark.extra_info.update(
        model=name,
        batch=batch,
        seq_len=STEPS,
        n_params=n_params,
        device=str(DEVICE),
        threads=torch.get_num_threads(),
    )
    benchmark(run)
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["seqs_per_s"] = batch / benchmark.stats.stats.median
