"""A kernel's first use (models/fused_model.py, kernels_on_disk): the two children that compile
it, one the forward and one the backward (compile_part), leave numba's disk cache holding every
kernel a training process then calls, so that process compiles nothing and runs the cached
code, as every later process does (the reason the children exist: code compiled in the running
process rounds differently from the cached code in the last bits). Each model's kernel is
compiled into a fresh cache folder here: about 20 s a model on two cores."""

import os
import subprocess
import sys
import textwrap

import pytest

from ntm_bench.models.fused_model import CHILD, compile_in_children

TRAIN = textwrap.dedent(
    """
    import importlib, sys, torch
    from ntm_bench.models import build_model
    name = sys.argv[1]
    model = build_model(name, 9, 8, controller_size=6, memory_size=7, memory_width=4)
    model(torch.rand(4, 3, 9)).sum().backward()
    kernel = importlib.import_module(f"ntm_bench.models.{name}_kernel")
    for part in ("sequence_forward", "sequence_backward"):
        stats = getattr(kernel, part).stats
        print(part, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
    """
)


@pytest.mark.parametrize("name", ["ntm", "dnc"])
def test_the_children_cache_every_kernel_a_training_process_calls(name, tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), CHILD: "1"}
    compile_in_children(name, env)
    # CHILD set here too: the check of the marker is skipped, the process takes what is cached
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, name], env=env, capture_output=True, text=True, check=True
    )
    # a float32 training step at other sizes: each kernel loaded (one hit), none compiled
    assert done.stdout.split("\n")[:2] == ["sequence_forward 1 0", "sequence_backward 1 0"]
