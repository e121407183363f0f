"""The C allocator's settings for training and benchmark processes.

Why: a recurrent model's training step allocates and frees the same mid-sized tensors every
time step (at batch 16 the NTM's memory is 16 x 128 x 20 floats = 160 KiB, and the fused
sequence keeps one per step for its backward). glibc's malloc serves blocks over its mmap
threshold (128 KiB at first) with fresh pages from the kernel and gives freed heap memory back
at once, so every step pays page faults to zero memory it just returned: measured on the 2-core
CPU, 19-38 % of the fused NTM's training step at batch 16 (the nn.LSTM reference at batch 16
did not change; every model and the reference run with the same setting, so ratios stay fair).
`tune_malloc` raises the thresholds so freed blocks are reused from the heap, in every process that
trains or measures (the driver, pool and Ray workers, the speed benchmark), and the speed rows
record it. The cost is memory: a process keeps up to `TRIM_BYTES` of freed heap.

Only glibc has mallopt; elsewhere (macOS, musl) nothing changes and `tune_malloc` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)
MMAP_BYTES = 32 << 20  # blocks up to this come from the heap (glibc's maximum on 64-bit)
TRIM_BYTES = 1 << 30  # free heap kept before it is given back to the kernel
TOP_PAD_BYTES = 64 << 20  # extra heap requested per growth, so growth is rare

_state = {"tuned": None}


def tune_malloc() -> str:
    """Apply the settings once per process; returns what the allocator is now ("glibc tuned",
    or why it is the default), for the speed rows and the run records."""
    if _state["tuned"] is None:
        _state["tuned"] = _apply()
    return _state["tuned"]


def _apply() -> str:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return "default (not glibc)"
    settings = (
        (M_MMAP_THRESHOLD, MMAP_BYTES),
        (M_TRIM_THRESHOLD, TRIM_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES),
    )
    if not all(libc.mallopt(param, value) == 1 for param, value in settings):
        return "default (mallopt refused)"
    return "glibc tuned"
