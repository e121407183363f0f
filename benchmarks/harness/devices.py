"""The one device check: a --device string to a torch device that this machine has, with its
description for result rows. Training (run_suite.py and each run's provenance) and the speed
suite both use it, so a store names a machine one way."""

from __future__ import annotations

import os
import platform

import torch


def resolve_device(device: str) -> tuple[torch.device, str]:
    """The torch device (with its index on CUDA) and its description; ValueError naming the
    device when it is not one, is not cpu or cuda, or is CUDA on a machine without it."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a torch device (try cpu or cuda)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: CUDA is not available on this machine (use --device cpu)"
            )
        dev = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
        return dev, f"{dev} ({torch.cuda.get_device_name(dev)})"
    if dev.type != "cpu":
        raise ValueError(f"--device {device!r}: only cpu and cuda are supported")
    # the cores this process may use (a container's or taskset's share), not the host's count
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return dev, f"cpu ({platform.machine()}, {cores} cores)"
