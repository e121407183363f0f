"""Memory of the speed benchmark (benchmarks/speed_suite/bench.py): the peak memory of one
iteration, and the estimate and budget that skip configurations too big to run.

Peak memory (peak_mem_mb) comes from one more, untimed iteration:
- CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats (every tensor on the device);
- CPU: the same quantity, approximated as the bytes of the tensors alive before the iteration
  (parameters, gradients, optimizer state, batch) plus the growth of the process's peak resident
  set during it: free heap goes back to the OS first (malloc_trim), the kernel's high-water mark
  (VmHWM) is reset through /proc/self/clear_refs, and growth = VmHWM after - VmRSS before. Where
  clear_refs cannot be written, the growth of ru_maxrss is used: only a lower bound, so flagged.
  extra_json["peak_mem_method"] says which, with the two parts.

A configuration whose estimated memory exceeds the budget (half the available RAM, or 80% of the
free GPU memory) becomes a row without throughput and with the reason in extra_json["skipped"]:
the estimate runs the model on the meta device, which allocates nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import resource
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ntm_bench.benchmarks.speed_suite.configs import WIDTH, Config
from ntm_bench.models import MODELS

MB = 2**20


def proc_status_mb(key: str) -> float:
    """The value of `key` (VmRSS, VmHWM...) in /proc/self/status, in MB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def max_rss_mb() -> float:
    """The process's peak resident set so far (ru_maxrss), in MB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MB if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def peak_memory(step, device: torch.device, resident) -> tuple[float, dict]:
    """Peak memory in MB of one call of `step` on `device` (`resident` lists the tensors alive
    between iterations), and how it was measured (module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / MB, {
            "peak_mem_method": "cuda max_memory_allocated"
        }
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in resident()}
    alive = sum(storages.values()) / MB
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    if hasattr(libc, "malloc_trim"):  # glibc: return free heap, so reusing it shows as growth
        libc.malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = proc_status_mb("VmRSS")
        step()
        growth, method = (
            proc_status_mb("VmHWM") - before,
            "tensors alive before + VmHWM growth (clear_refs reset)",
        )
    except OSError:
        before = max_rss_mb()
        step()
        growth, method = (
            max_rss_mb() - before,
            "tensors alive before + ru_maxrss growth (lower bound)",
        )
    return alive + growth, {
        "peak_mem_method": method,
        "alive_mb": round(alive, 3),
        "rss_growth_mb": round(growth, 3),
    }


class AllocationCounter(TorchDispatchMode):
    """Sums the bytes of every tensor an op allocates (views and in-place results excluded)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if all(r.alias_info is None for r in func._schema.returns):
            self.bytes += sum(
                t.untyped_storage().nbytes()
                for t in (out if isinstance(out, (tuple, list)) else [out])
                if isinstance(t, torch.Tensor)
            )
        return out


def estimate_mb(name: str, params: dict, config: Config, cache: dict) -> float | None:
    """An upper bound on a configuration's memory: the parameters (x4 in training: gradients and
    Adam's two moments) plus everything a forward allocates, counted on the meta device for one
    sequence of 2 and of 4 steps and extrapolated linearly in steps and batch, times the number of
    seeds trained together (stacked parameters, batched activations). None where the model
    cannot run on the meta device. `cache` keeps the counts per (model, params, mode)."""

    def allocated(steps):
        with torch.device("meta"):
            model = MODELS[name](WIDTH + 1, WIDTH, **params)
            inputs = torch.zeros(steps, 1, WIDTH + 1)
        with AllocationCounter() as counter, torch.set_grad_enabled(config.mode == "train"):
            model(inputs)
        return counter.bytes, sum(p.numel() * p.element_size() for p in model.parameters())

    key = (name, json.dumps(params, sort_keys=True), config.mode)
    if key not in cache:
        try:
            (two, params_bytes), (four, _) = allocated(2), allocated(4)
            cache[key] = (params_bytes, two, (four - two) / 2)
        except Exception:  # noqa: BLE001 - no estimate means no guard, never a failed benchmark
            cache[key] = None
    if cache[key] is None:
        return None
    params_bytes, two, per_step = cache[key]
    factor = 4 if config.mode == "train" else 1
    return (
        config.seeds
        * (factor * params_bytes + config.batch * (two + per_step * (config.steps - 2)))
        / MB
    )


def memory_budget_mb(device: torch.device) -> float:
    """Half the available RAM (the machine is shared), or 80% of the free GPU memory."""
    if device.type == "cuda":
        return 0.8 * torch.cuda.mem_get_info(device)[0] / MB
    try:
        available = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        return 0.5 * int(available.group(1)) / 1024
    except (OSError, AttributeError):
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB
