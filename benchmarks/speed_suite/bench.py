"""Speed benchmarks: throughput of every model on fixed copy batches, against a plain
torch.nn.LSTM timed in turns with each of them, on the same batches.

One invocation (`run_bench`) measures, per model:
- the main grid: modes "forward" (no grad) and "train" (forward, cost_bits, backward, Adam step)
  x batch sizes, at the paper's copy configuration (NTM and DNC: controller 100, memory 128 x 20,
  one read and one write head; the registry's LSTM: 3 layers of 256), 41 steps (copy length 20,
  delimiter, 20 outputs);
- "+compile" variants (model "ntm+compile") in train mode of every model whose compile_step()
  returns True (a chunk of 8 time steps per compiled call): the models run the compiled chunk
  only with grad enabled, so a compiled forward row would time the eager path. Compilation
  happens in the first, untimed iteration; its excess over a timed iteration is recorded as
  compile_s in extra_json;
- scaling sweeps of the memory models in SWEEP_MODELS, both at batch 16 in train mode: memory
  size at 41 steps, and sequence length (time steps of input) at memory 128;
- batched seeds (name suffix "/s8", column seeds = 8) in train mode at every main-grid batch
  size, of every model with supports_vmap, eager, and compiled too where the model has its own
  K-seed pass (seeds_forward: the fused NTM and DNC): K models (seeds 0..K-1 by default) trained
  as one (benchmarks/harness/batched.py's SeedStack), each seed on its own copy of the same batch,
  the loss the sum of the seeds' costs, one Adam over the stacked parameters. sequences/s counts
  every seed's sequences (K x batch per iteration), n_params is one seed's, and extra_json's
  wall_vs_one_seed is the time per iteration over that of the model's one-seed row at the same
  batch, eager or compiled alike, through the reference both were timed in turns with (at most
  K: batching pays);
- the reference row, model "lstm_ref": torch.nn.LSTM(9, 256, 1 layer) + Linear(256, 8), once per
  (mode, batch, steps), timed alone; every other row is timed in rounds of turns with that
  reference (the profile's Timing), and its ratio_to_lstm is the median over rounds of the
  reference's time per iteration over its own (times K for K batched seeds: sequences per second
  against the reference's), so a machine whose speed drifts between rows leaves the ratios alone
  (its sequences/s moves with the machine).

Timing (a warm-up, a burn-in, then the rounds) is benchmarks/speed_suite/timing.py's. The
intra-op thread count is set (default 1: two threads made small recurrent models 2-26x slower
under load) and recorded, and so is the C allocator's tuning, which training workers get too
(benchmarks/process/allocator.py; extra_json.allocator).

Peak memory (peak_mem_mb), and the memory estimate and budget that skip configurations too big to
run, are measured in benchmarks/speed_suite/peak_memory.py: its docstring says how, on CPU and
on CUDA.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Callable, NamedTuple

import torch

from ntm_bench.benchmarks.harness.batched import SeedStack
from ntm_bench.benchmarks.process.allocator import tune_malloc
from ntm_bench.benchmarks.process.threads import intra_op_threads
from ntm_bench.benchmarks.speed_suite.checks import check_run_options
from ntm_bench.benchmarks.speed_suite.peak_memory import estimate_mb, memory_budget_mb
from ntm_bench.benchmarks.speed_suite.output import common_fields, log, make_row, write
from ntm_bench.benchmarks.speed_suite.timing import (
    cold_compile,
    make_step,
    measure,
    measure_step,
)
from ntm_bench.benchmarks.speed_suite.configs import (
    PROFILES,
    REFERENCE,
    REFERENCE_LABEL,
    BenchProfile,
    Config,
    build,
    copy_batch,
    model_params,
    plan,
)
from ntm_bench.benchmarks.harness.devices import resolve_device
from ntm_bench.models import MODELS
from ntm_bench.tasks.base import Batch


class Measured(NamedTuple):
    """One configuration's measurement: one seed's trainable parameter count and the stats of
    timing.measure (throughput, timing details, peak memory)."""

    n_params: int
    stats: dict


def memory_guard(config: Config, params: dict, budget_mb: float, cache: dict) -> dict:
    """The memory estimate's entries of a row's extra for `config` built with `params`:
    estimate_mb where there is one, and `skipped` with the reason where it exceeds `budget_mb`;
    none for an infinite budget, which skips the estimate. `cache` is estimate_mb's."""
    if not budget_mb < float("inf"):
        return {}
    estimate = estimate_mb(config.model, params, config, cache)
    if estimate is None:
        return {}
    found = {"estimate_mb": round(estimate, 1)}
    if estimate > budget_mb:
        found["skipped"] = f"estimated {estimate:,.0f} MB exceeds the {budget_mb:,.0f} MB budget"
    return found


def time_config(
    config: Config, params: dict, data: Batch, run: Run, reference: Callable[[], None]
) -> Measured:
    """Build `config`'s models (seeds seed..seed+K-1, a SeedStack where K > 1) with `params` on
    the run's device, compile them cold where the configuration asks, and measure them on `data`
    in turns with `reference` (the group's reference step); raises
    whatever building or measuring raises. The models live only in this call's frame, so they
    are gone once it returns, or once the caller is done with what it raised."""
    device, seed = run.device, run.seed
    models = [build(config.model, params, device, seed + k) for k in range(config.seeds)]
    # one seed's count, as in the seeds=1 row: the seeds column says how many were trained
    n_params = sum(p.numel() for p in models[0].parameters() if p.requires_grad)
    model = models[0] if config.seeds == 1 else SeedStack(models)
    with cold_compile() if config.compiled else contextlib.nullcontext():
        if config.compiled:
            model.compile_step()
        timing = run.profile.timing
        return Measured(n_params, measure(model, data, config.mode, device, timing, reference))


def compile_stats(stats: dict) -> dict:
    """A compiled row's entries of extra, from its timing `stats`: compile_s (the first
    iteration's excess over a timed one), the compile cache setting, the graphs dynamo compiled,
    and a warning where there were none."""
    found = {
        "compile_s": max(0.0, stats["first_iter_s"] - stats["median_iter_s"]),
        "compile_cache": "off (cold compile)",
        "compiled_graphs": int(torch._dynamo.utils.counters["stats"]["unique_graphs"]),
    }
    # a model whose forward never calls its compiled chunk would time the eager path: say so
    if not found["compiled_graphs"]:
        found["warning"] = (
            "compile_step() returned True but nothing was compiled: this row timed the eager path"
        )
    return found


def row_fields(n_params: int, stats: dict, extra: dict) -> dict:
    """A measured row's fields: `n_params`, the throughput and peak memory taken out of `stats`,
    and the rest of `stats` after `extra` as the row's extra."""
    return {
        "n_params": n_params,
        "seqs_per_s": stats.pop("seqs_per_s"),
        "peak_mem_mb": stats.pop("peak_mem_mb"),
        "extra": {**extra, **stats},
    }


def measure_config(config: Config, data: Batch, run: Run, reference: Callable[[], None]) -> dict:
    """Measure one configuration in turns with `reference`; returns the row's fields (skipped and
    failed ones without throughput, the reason in extra). An infinite budget skips the memory
    estimate."""
    params = model_params(config.model, run.profile.sizes, config.memory_size)
    extra = {
        "label": f"{config.model}({', '.join(f'{k}={v}' for k, v in params.items())})",
        "params": params,
        **memory_guard(config, params, run.budget_mb, run.estimates),
    }
    if "skipped" in extra:
        return {"extra": extra}
    try:
        measured = time_config(config, params, data, run, reference)
    except Exception as error:  # noqa: BLE001 - one failed configuration must not lose the others
        extra["error"] = f"{type(error).__name__}: {error}"[:500]
        return {"extra": extra}
    finally:
        # the models went with time_config's frame (and the error's traceback, on failure)
        if run.device.type == "cuda":  # give the next configuration the whole device
            gc.collect()
            torch.cuda.empty_cache()
    if config.compiled:
        measured.stats.update(compile_stats(measured.stats))
    return row_fields(measured.n_params, measured.stats, extra)


class Reference(NamedTuple):
    """A group's reference: its row's fields (timed alone) and its warm step, which every
    configuration of the group is timed in turns with."""

    fields: dict
    step: Callable[[], None]


def measure_reference(mode: str, data: Batch, run: Run) -> Reference:
    model = build(REFERENCE, {}, run.device, run.seed)
    step = make_step(model, data, mode)  # timed alone here, then in turns with every member
    stats = measure_step(step, 1, data.inputs.shape[1], run.device, run.profile.timing)
    n_params = sum(p.numel() for p in model.parameters())
    return Reference(row_fields(n_params, stats, {"label": REFERENCE_LABEL}), step.run)


def groups(configs: list[Config]) -> dict[tuple[str, int, int], list[Config]]:
    """Configurations by (mode, batch, steps): the key of their shared reference row."""
    found: dict[tuple[str, int, int], list[Config]] = {}
    for config in configs:
        found.setdefault((config.mode, config.batch, config.steps), []).append(config)
    return found


def add_wall_vs_one_seed(fields: dict, alone: dict, seeds: int) -> None:
    """wall_vs_one_seed into a batched-seeds row's extra: its time per iteration over that of the
    same model trained alone (same batch and compile flag, measured just before in the same
    group), through the reference both were timed in turns with, so that the machine's drift
    between the two rows cancels: (alone's vs_reference) / (this row's vs_reference / seeds);
    left out where either failed or was skipped."""
    batched, one = fields["extra"].get("vs_reference"), alone.get("extra", {}).get("vs_reference")
    if batched and one:
        fields["extra"]["wall_vs_one_seed"] = one / (batched / seeds)


class Run(NamedTuple):
    """What every configuration of one run_bench call shares."""

    common: dict  # common_fields
    device: torch.device
    profile: BenchProfile
    budget_mb: float  # inf: no memory estimate
    seed: int
    estimates: dict  # estimate_mb's cache, across groups


def measure_group(run: Run, key: tuple[str, int, int], members: list[Config], emit) -> None:
    """The reference row of `key` (mode, batch, steps), then a row for each configuration of
    `members` in order, all on one copy batch; each row goes to `emit` once it is measured."""
    mode, batch, steps = key
    data = copy_batch(batch, steps, run.device, run.seed)
    reference = measure_reference(mode, data, run)
    name = f"{REFERENCE}/{mode}/b{batch}/t{steps}"
    emit(make_row(run.common, name, REFERENCE, key, None, reference.fields, 1.0))
    measured = {}
    for config in members:
        fields = measured[config] = measure_config(config, data, run, reference.step)
        if config.seeds > 1:  # plan() puts the one-seed configuration first
            add_wall_vs_one_seed(fields, measured.get(config._replace(seeds=1), {}), config.seeds)
        model = config.model + ("+compile" if config.compiled else "")
        emit(
            make_row(
                run.common,
                config.name,
                model,
                key,
                config.memory_size,
                fields,
                fields.get("extra", {}).get("vs_reference"),
                config.seeds,
            )
        )


def bench_profile(models: list[str], profile, threads: int, max_mem_mb, seed: int):
    """The BenchProfile that `profile` is or names, once `models` and the run's numbers are known
    to work: KeyError for an unknown profile or model, BenchError (a ValueError) for threads,
    max_mem_mb or seed out of range."""
    prof = profile if isinstance(profile, BenchProfile) else PROFILES.get(profile)
    if prof is None:
        raise KeyError(f"unknown speed profile {profile!r} (known: {', '.join(PROFILES)})")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise KeyError(f"unknown models {unknown} (known: {', '.join(MODELS)})")
    check_run_options(threads, max_mem_mb, seed)
    return prof


def run_bench(
    models: list[str],
    device: str,
    store_path: str | None,
    json_path: str | None,
    profile="full",
    progress: bool = True,
    *,
    threads: int = 1,
    max_mem_mb: float | None = None,
    seed: int = 0,
) -> list[dict]:
    """Measure `models` (registry names) on `device` with `profile` (a PROFILES name or a
    BenchProfile); write the rows to the store at `store_path` and the JSON file at `json_path`
    where given, and return them (dicts keyed by the speed table's columns). KeyError for an
    unknown profile or model, BenchError (a ValueError) for threads, max_mem_mb or seed out of
    range; `run_suite.py bench` checks the store and the JSON file first (check_destinations)."""
    prof = bench_profile(models, profile, threads, max_mem_mb, seed)
    dev, described = resolve_device(device)
    tune_malloc()  # as in training workers: see benchmarks/process/allocator.py
    with intra_op_threads(threads):
        configs = plan(list(dict.fromkeys(models)), prof)
        common = common_fields(described, threads)
        budget = max_mem_mb if max_mem_mb is not None else memory_budget_mb(dev)
        run = Run(common, dev, prof, budget, seed, {})
        by_key = groups(configs)
        rows, total = [], len(configs) + len(by_key)

        def emit(row: dict) -> None:
            rows.append(row)
            log(progress, len(rows), total, row)

        for key, members in by_key.items():
            measure_group(run, key, members, emit)
            # after every group: an interrupted run keeps what it measured
            write(rows, store_path, json_path)
    return rows
