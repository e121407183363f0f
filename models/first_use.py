"""What the children of a kernel's first use run (models/fused_model.py, kernels_on_disk): one
compiles the forward kernel into numba's disk cache, the other the backward, at the same time. A
module of its own because it builds models through the registry (models/__init__.py), which
imports fused_model: there it would close an import cycle."""

import importlib

import torch
from numba.core.registry import CPUDispatcher

from ntm_bench.models import build_model


def compile_part(model: str, part: str) -> None:
    """In a child of kernels_on_disk: compile and cache `model`'s forward kernel ("forward"),
    or its backward ("backward"), on a small float32 batch. The backward needs a forward's tape:
    that forward runs as plain Python (the kernel module's numba functions swapped for the
    functions they compile, for the call), so this child compiles only the backward and what it
    calls while the other compiles the forward."""
    net = build_model(model, 3, 2, controller_size=4, memory_size=5, memory_width=3)
    inputs = torch.rand(3, 2, 3)
    if part == "forward":
        with torch.no_grad():
            net(inputs)
        return
    kernel = vars(importlib.import_module(f"ntm_bench.models.{model}_kernel"))
    jitted = {name: f for name, f in kernel.items() if isinstance(f, CPUDispatcher)}
    kernel.update({name: f.py_func for name, f in jitted.items()})
    try:
        logits = net(inputs)
    finally:
        kernel.update(jitted)  # before the backward compiles: it binds them
    logits.sum().backward()
