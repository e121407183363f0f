"""Interleaved speed rows: models timed in alternating rounds in one process, for ratios between
models that survive a machine whose speed drifts over minutes.

The main suite (benchmarks/speed_suite/bench.py) times one configuration after another; on the
2-core VM this project runs on, the reference LSTM's speed moved 1.7x within a day, so two rows
measured minutes apart can disagree by more than the difference being measured (the
DNC-within-2x-NTM target). Here every contender of one batch size (the reference LSTM, each model
eager and, where compile_step applies, compiled) is built and warmed up (compiled) first, then timed
in `rounds` rounds, each contender for at least `round_s` seconds per round in turn, so a slow
minute slows them all alike. Train mode, the paper's copy configuration (41 steps).

Each row (name suffix "/interleaved") has seqs_per_s from its median time per iteration,
ratio_to_lstm as the median over rounds of the per-round ratio to the reference, and in
extra_json the per-round times (round_iter_s) and `vs`: for every other contender, the median
over rounds of this row's time per iteration over that one's (so dnc+compile's vs["ntm+compile"]
is the DNC's cost in NTM steps). First-iteration time (compile included) is first_iter_s. Peak
memory is not measured here (the main suite's rows have it).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Callable, NamedTuple

import torch

from ntm_bench.benchmarks.process.allocator import tune_malloc
from ntm_bench.benchmarks.process.threads import intra_op_threads
from ntm_bench.benchmarks.harness.devices import resolve_device
from ntm_bench.benchmarks.speed_suite.timing import make_step, sync, time_rounds
from ntm_bench.benchmarks.speed_suite.output import common_fields, log, make_row, write
from ntm_bench.benchmarks.speed_suite.configs import (
    PAPER_SIZES,
    REFERENCE,
    REFERENCE_LABEL,
    build,
    copy_batch,
    model_params,
)
from ntm_bench.tasks.base import Batch

STEPS = 41  # copy length 20, delimiter, 20 outputs


class Contender(NamedTuple):
    """A model timed in the rounds."""

    model: torch.nn.Module
    params: dict  # the keywords it was built with


def contenders(models: list[str], device: torch.device, sizes: dict, seed: int) -> dict:
    """label -> Contender: the reference, then each model eager and compiled."""
    found = {REFERENCE: Contender(build(REFERENCE, {}, device, seed), {})}
    for name in models:
        params = model_params(name, sizes, None)
        found[name] = Contender(build(name, params, device, seed), params)
        compiled = build(name, params, device, seed)
        if compiled.compile_step():
            found[f"{name}+compile"] = Contender(compiled, params)
    return found


class InterleavedRun(NamedTuple):
    """What every batch size of one run_interleaved call shares."""

    models: list[str]
    device: torch.device
    sizes: dict
    seed: int
    rounds: int
    round_s: float
    common: dict  # the columns every row shares (output.common_fields)


class Warm(NamedTuple):
    """A contender's training step, ready to time, and the seconds its first call took
    (compilation included, for the +compile contenders)."""

    step: Callable[[], None]
    first_s: float


def warm_up(found: dict, data: Batch, device: torch.device) -> dict[str, Warm]:
    """label -> the training step on `data` of each contender of `found` (contenders), called
    once and timed: the warm-up, which compiles the +compile contenders."""
    warm = {}
    for label, (model, _) in found.items():
        step = make_step(model, data, "train").run
        start = time.perf_counter()
        step()
        sync(device)
        warm[label] = Warm(step, time.perf_counter() - start)
    return warm


def contender_fields(
    run: InterleavedRun, label: str, model, params: dict, batch: int, times: dict, first_s: float
) -> dict:
    """The row fields (module docstring) of contender `label` (`model`, built with `params`) at
    `batch`, from `times` (time_rounds': label -> the time per iteration of each round) and the
    seconds of its first iteration."""
    own = times[label]
    vs = {
        other: statistics.median(a / b for a, b in zip(own, times[other]))
        for other in times
        if other != label
    }
    median = statistics.median(own)
    described = ", ".join(f"{k}={v}" for k, v in params.items())
    return {
        "n_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "seqs_per_s": batch / median,
        "extra": {
            "median_iter_s": median,
            "round_iter_s": own,
            "rounds": run.rounds,
            "round_s": run.round_s,
            "first_iter_s": first_s,
            "vs": vs,
            "interleaved": True,
            "params": params,
            "label": REFERENCE_LABEL
            if label == REFERENCE
            else f"{label.removesuffix('+compile')}({described})",
        },
    }


def measure_batch(run: InterleavedRun, batch: int, emit) -> None:
    """Build, warm up and time in rounds every contender of `run.models` at `batch`, then hand
    each one's row to `emit`, in contenders' order."""
    data = copy_batch(batch, STEPS, run.device, run.seed)
    found = contenders(run.models, run.device, run.sizes, run.seed)
    warm = warm_up(found, data, run.device)
    steps = {label: w.step for label, w in warm.items()}
    times = time_rounds(steps, run.device, run.rounds, run.round_s)
    for label, (model, params) in found.items():
        memory_size = params.get("memory_size")
        fields = contender_fields(run, label, model, params, batch, times, warm[label].first_s)
        name = (
            f"{label}/train/b{batch}"
            + (f"/n{memory_size}" if memory_size else "")
            + f"/t{STEPS}/interleaved"
        )
        vs = fields["extra"]["vs"]
        ratio = 1 / vs[REFERENCE] if label != REFERENCE else 1.0
        emit(make_row(run.common, name, label, ("train", batch, STEPS), memory_size, fields, ratio))


def run_interleaved(
    models: list[str],
    device: str,
    store_path: str | None,
    json_path: str | None,
    *,
    batches=(1, 16),
    rounds: int = 7,
    round_s: float = 1.5,
    threads: int = 1,
    seed: int = 0,
    sizes: dict | None = None,
    progress: bool = True,
) -> list[dict]:
    """Measure `models` interleaved (module docstring); write and return the rows."""
    dev, described = resolve_device(device)
    tune_malloc()
    sizes = PAPER_SIZES if sizes is None else sizes
    rows = []
    with intra_op_threads(threads):
        common = common_fields(described, threads)
        run = InterleavedRun(models, dev, sizes, seed, rounds, round_s, common)
        total = len(batches) * (1 + 2 * len(models))

        def emit(row: dict) -> None:
            rows.append(row)
            log(progress, len(rows), total, row)

        for batch in batches:
            measure_batch(run, batch, emit)
            write(rows, store_path, json_path)
    return rows


def format_pairs(rows: list[dict]) -> str:
    """Each model's time per step over each earlier model's, same batch and both eager or both
    compiled (the medians over rounds in extra_json's `vs`), one line each."""
    lines = []
    for row in rows:
        order = [r["model"] for r in rows if r["batch"] == row["batch"]]
        compiled = row["model"].endswith("+compile")
        for other, ratio in json.loads(row["extra_json"])["vs"].items():
            if (
                REFERENCE not in (row["model"], other)
                and other.endswith("+compile") == compiled
                and order.index(other) < order.index(row["model"])
            ):
                lines.append(
                    f"batch {row['batch']}: {row['model']} takes {ratio:.2f} x the time per step "
                    f"of {other}"
                )
    return "\n".join(lines)
