"""The speed suite's one way of timing: contenders take turns (`time_rounds`), each for at least
`round_s` seconds, round after round, so a machine whose speed drifts slows them alike; a ratio
between two contenders is the median over rounds of the ratio within a round. Every mode times
so: the table (bench.py: each configuration in turns with the reference LSTM, `measure`), the
interleaved ratios (interleaved.py: all contenders of a batch size), a model against its code at
a git revision (versus.py) and the cost of a profile's runs (cost.py).

Here too: a model's (or a SeedStack's) forward or training iteration on a fixed batch, built
(`make_step`) and warmed up (`warm_up`: the first iteration, which compiles where anything does,
then `burn_in` more). CUDA is synchronized after every iteration (a training loop reads its loss
every step). Peak memory comes from one more, untimed iteration
(benchmarks/speed_suite/peak_memory.py).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, NamedTuple

import torch
from torch import nn

from ntm_bench.benchmarks.harness.batched import SeedStack
from ntm_bench.benchmarks.speed_suite.configs import Timing
from ntm_bench.benchmarks.speed_suite.peak_memory import peak_memory
from ntm_bench.tasks.base import Batch, cost_bits


class StepParts(NamedTuple):
    """What a step is made of."""

    forward: Callable[[], torch.Tensor]  # () -> logits
    cost: Callable[[torch.Tensor], torch.Tensor]  # logits -> the loss
    params: list  # the parameters an optimizer steps
    held: list  # the other tensors it keeps alive (buffers, the batch)


class Step(NamedTuple):
    """One iteration, ready to time."""

    run: Callable[[], None]  # one iteration
    resident: Callable[[], list]  # the tensors it keeps alive between iterations


def step_parts(model: nn.Module | SeedStack, data: Batch) -> StepParts:
    """The StepParts of one model on `data`, or of a SeedStack of K seeds on K stacked copies of
    `data` ([K, T, B, I]: a real copy, so the forward takes the seed groups' path, where every seed
    has its own batch) with the sum of the seeds' cost_bits as the loss: its gradient for seed
    k's parameters is seed k's own."""

    def cost(logits):
        return cost_bits(logits, data.targets, data.mask)

    if not isinstance(model, SeedStack):
        return StepParts(
            lambda: model(data.inputs), cost, list(model.parameters()), [*model.buffers(), *data]
        )
    inputs = data.inputs.expand(model.k, *data.inputs.shape).contiguous()
    return StepParts(
        lambda: model.forward(inputs),
        lambda logits: sum(cost(l) for l in logits),
        list(model.params.values()),
        [*model.buffers.values(), *data, inputs],
    )


def make_step(model: nn.Module | SeedStack, data: Batch, mode: str) -> Step:
    """The Step of one model or of a SeedStack (step_parts) in `mode`, "forward" (no grad) or
    "train"; a training iteration is forward, cost, backward and an Adam
    step."""
    forward, cost, params, held = step_parts(model, data)
    if mode == "forward":

        def step():
            with torch.no_grad():
                forward()

        return Step(step, lambda: [*params, *held])
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def step():
        loss = cost(forward())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def resident():
        state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        return [*params, *held, *(p.grad for p in params if p.grad is not None), *state]

    return Step(step, resident)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(step, device: torch.device, burn_in: int) -> float:
    """Call `step` once (timed: the seconds returned, compilation included where it compiles),
    then `burn_in` times more, untimed."""
    start = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - start
    for _ in range(burn_in):
        step()
    sync(device)
    return first


def time_rounds(steps: dict, device: torch.device, rounds: int, round_s: float) -> dict:
    """label -> the time per iteration of each round, the contenders taking turns."""
    times = {label: [] for label in steps}
    for _ in range(rounds):
        for label, step in steps.items():
            count, start = 0, time.perf_counter()
            while count < 2 or time.perf_counter() - start < round_s:
                step()
                sync(device)
                count += 1
            times[label].append((time.perf_counter() - start) / count)
    return times


def measure(
    model: nn.Module | SeedStack,
    data: Batch,
    mode: str,
    device: torch.device,
    timing: Timing,
    reference: Callable[[], None] | None = None,
) -> dict:
    """Throughput (the sequences of every seed of a SeedStack), timing details and peak memory of
    `model` on `data` (measure_step on its make_step)."""
    seeds = model.k if isinstance(model, SeedStack) else 1
    step = make_step(model, data, mode)
    return measure_step(step, seeds, data.inputs.shape[1], device, timing, reference)


def measure_step(
    step: Step,
    seeds: int,
    batch: int,
    device: torch.device,
    timing: Timing,
    reference: Callable[[], None] | None = None,
) -> dict:
    """Throughput, timing details and peak memory of `step` (`seeds` x `batch` sequences an
    iteration), warmed up here, then timed in `timing.rounds` rounds of turns with `reference` (a
    warm step on the same batch; None: alone); vs_reference is its sequences per second in the
    reference's: the median over rounds of the reference's time per iteration over this step's,
    times the seeds (each iteration of K seeds trains K batches)."""
    first = warm_up(step.run, device, timing.burn_in)
    steps = (
        {"model": step.run} if reference is None else {"model": step.run, "reference": reference}
    )
    times = time_rounds(steps, device, timing.rounds, timing.round_s)
    median = statistics.median(times["model"])
    stats = {
        "first_iter_s": first,
        "rounds": timing.rounds,
        "round_s": timing.round_s,
        "round_iter_s": times["model"],
        "median_iter_s": median,
        "seqs_per_s": seeds * batch / median,
    }
    if reference is not None:
        own, ref = times["model"], times["reference"]
        stats["reference_round_iter_s"] = ref
        stats["vs_reference"] = seeds * statistics.median(r / t for t, r in zip(own, ref))
    stats["peak_mem_mb"], memory = peak_memory(step.run, device, step.resident)
    return {**stats, **memory}


@contextlib.contextmanager
def cold_compile():
    """Compile from scratch: dynamo's in-memory caches cleared (which also keeps the recompile
    limit away) and inductor's on-disk caches off, so compile_s does not depend on what earlier
    processes left in the cache folder."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with contextlib.ExitStack() as stack:
        stack.enter_context(inductor_config.patch(fx_graph_cache=False))
        if hasattr(functorch_config, "enable_autograd_cache"):
            stack.enter_context(functorch_config.patch(enable_autograd_cache=False))
        yield
