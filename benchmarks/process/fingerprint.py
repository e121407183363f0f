"""The numeric fingerprint of this process: what decides a run's floats to the last digit.

A fixed-seed run is bit-identical on one processor with the same settings, and differs in the
7th-8th digit on another: torch and its BLAS choose vector kernels per CPU (AVX2 on one, AVX-512
on another), numba compiles its kernels for the host CPU, and each rounds differently. "cpu
(x86_64, 2 cores)" cannot tell two such machines apart, so every run, published file and speed
row records this fingerprint, and exact comparisons (the golden runs, benchmarks.harness.reproduce)
are made only where the fingerprint is the same; elsewhere they allow a stated tolerance.

    {"device": "cpu", "cpu": "GenuineIntel Intel(R) Xeon(R) Processor @ 2.60GHz",
     "capability": "AVX512", "blas": "mkl", "torch": "2.13.0+cpu", "numba": "0.68.1",
     "threads": 1}

On a GPU, "device" is "cuda" and "gpu" and "cuda" name the card and the CUDA version.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
from functools import cache
from pathlib import Path

import torch

# Relative tolerance for a run's numbers on another processor, for its first few hundred steps.
# Measured drift (two vector-kernel sets on one Intel Xeon, ATEN_CPU_CAPABILITY=avx2 with
# MKL_ENABLE_INSTRUCTIONS=AVX2 against the default AVX-512): at most 1.3e-7 relative over the
# golden runs' 10 steps and 8.8e-8 over the published LSTM copy run's first 200 steps; an AMD
# EPYC gave 7.3e-9 at that run's step 25. 1e-4 leaves three orders of magnitude above the drift
# and two below a 1 % change, which any real change of the code makes at once. Later in a run
# rounding is amplified by training (a quick profile's final costs differ in the first digit
# between processors), so there the verdicts carry over, not the curves.
TOLERANCE = 1e-4

# The keys two fingerprints must share for their runs' floats to be expected bit for bit.
KEYS = ("device", "cpu", "capability", "blas", "torch", "numba", "threads", "gpu", "cuda")


@cache
def cpu_name() -> str:
    """The processor's vendor and model name ("GenuineIntel Intel(R) Xeon(R) ..."): from
    /proc/cpuinfo on Linux, else what the platform module says."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    named = " ".join(v for v in (fields.get("vendor_id"), fields.get("model name")) if v)
    return named or platform.processor() or platform.machine() or "unknown"


@cache
def blas() -> str:
    """The BLAS torch was built with (BLAS_INFO in torch's build settings: mkl, open, ...)."""
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def numba_version() -> str | None:
    """numba's version: it compiles the memory models' CPU kernels for this processor (or for
    the one NUMBA_CPU_NAME names, which is then recorded beside it)."""
    try:
        import numba
    except ImportError:
        return None
    target = os.environ.get("NUMBA_CPU_NAME")
    return f"{numba.__version__} ({target})" if target else numba.__version__


def fingerprint(device: str = "cpu") -> dict:
    """This process's fingerprint on `device` ("cpu" or "cuda"; see the module docstring)."""
    found = {
        "device": "cuda" if str(device).startswith("cuda") else "cpu",
        "cpu": cpu_name(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas(),
        "torch": torch.__version__,
        "numba": numba_version(),
        "threads": torch.get_num_threads(),
    }
    if found["device"] == "cuda":
        found["gpu"] = torch.cuda.get_device_name(torch.device(device))
        found["cuda"] = torch.version.cuda
    return found


def same(recorded: dict | str | None, here: dict) -> bool:
    """Whether floats recorded under `recorded` (a fingerprint, its JSON text, or None for a run
    from before fingerprints) are expected bit for bit under `here`. Unknown is not the same."""
    if isinstance(recorded, str):
        try:
            recorded = json.loads(recorded)
        except ValueError:
            return False
    if not isinstance(recorded, dict):
        return False
    return all(recorded.get(key) == here.get(key) for key in KEYS)


def agree(recorded: float, got: float, exact: bool, flips: float = 0.0) -> bool:
    """Whether `got` reproduces `recorded`: bit for bit where `exact`, else within TOLERANCE
    relative, or within `flips` (a count's allowance: one bit flipped at the 0.5 threshold
    moves a mean of bit errors over n sequences by 1/n)."""
    if exact:
        return recorded == got
    return (
        math.isclose(recorded, got, rel_tol=TOLERANCE, abs_tol=1e-9) or abs(recorded - got) <= flips
    )


def describe(found: dict) -> str:
    """One line for messages and the README: "Intel(R) Xeon(R) ... (AVX512, mkl, 1 thread)"."""
    where = found.get("gpu") or found.get("cpu", "unknown")
    threads = found.get("threads")
    return (
        f"{where} ({found.get('capability')}, {found.get('blas')}, torch {found.get('torch')}, "
        f"{threads} thread{'s' if threads != 1 else ''})"
    )
