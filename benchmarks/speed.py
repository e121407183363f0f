"""Speed benchmarks: throughput of every model on fixed copy batches, against a plain
torch.nn.LSTM measured in the same run, on the same batches, just before the models that share
its configuration.

One invocation (`run_bench`) measures, per model:
- the main grid: modes "forward" (no grad) and "train" (forward, cost_bits, backward, Adam step)
  x batch sizes, at the paper's copy configuration (NTM and DNC: controller 100, memory 128 x 20,
  one read and one write head; the registry's LSTM: 3 layers of 256), 41 steps (copy length 20,
  delimiter, 20 outputs);
- "+compile" variants (model "ntm+compile") in train mode of every model whose compile_step()
  returns True: the models run the compiled step only with grad enabled, so a compiled forward
  row would time the eager path. Compilation happens in the first, untimed iteration; its excess
  over a timed iteration is recorded as compile_s in extra_json;
- scaling sweeps of the memory models in SWEEP_MODELS, both at batch 16 in train mode: memory
  size at 41 steps, and sequence length (time steps of input) at memory 128;
- the reference row, model "lstm_ref": torch.nn.LSTM(9, 256, 1 layer) + Linear(256, 8), once per
  (mode, batch, steps); every row's ratio_to_lstm = its sequences/s / the reference's.

Timing (as nanoGPT's bench.py): one warm-up iteration, `burn_in` more, then timed iterations until
at least `min_iters` of them and `min_s` seconds, or `max_s` seconds; CUDA is synchronized after
every iteration (a training loop reads its loss every step). The intra-op thread count is set
(default 1: see DESIGN.md) and recorded.

Peak memory (peak_mem_mb), and the memory estimate and budget that skip configurations too big to
run, are measured in benchmarks/speed_memory.py: its docstring says how, on CPU and on CUDA.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import torch
from torch import nn

from benchmarks.executors import intra_op_threads
from benchmarks.speed_memory import estimate_mb, memory_budget_mb, peak_memory
from benchmarks.speed_setup import (  # noqa: F401 - the setup stays importable from here
    PAPER_SIZES, PROFILES, REFERENCE, SMOKE_SIZES, SWEEP_MODELS, WIDTH, BenchProfile, Config, ReferenceLSTM, Timing,
    accepted_params, build, copy_batch, model_params, plan)
from models import MODELS
from tasks.base import Batch, cost_bits

# -- measuring ---------------------------------------------------------------------------------

def make_step(model: nn.Module, data: Batch, mode: str):
    """(one iteration as a callable, the tensors it keeps alive between iterations)."""
    if mode == "forward":
        def step():
            with torch.no_grad():
                model(data.inputs)
        return step, lambda: [*model.parameters(), *model.buffers(), *data]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = cost_bits(model(data.inputs), data.targets, data.mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def resident():
        state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        return [*model.parameters(), *model.buffers(), *grads, *state, *data]
    return step, resident


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step, device: torch.device, timing: Timing) -> dict:
    """Warm up, burn in, then time iterations (see the module docstring)."""
    start = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - start
    for _ in range(timing.burn_in):
        step()
    sync(device)
    times = []
    begin = time.perf_counter()
    while True:
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
        spent = time.perf_counter() - begin
        if (len(times) >= timing.min_iters and spent >= timing.min_s) or spent >= timing.max_s:
            break
    return {"first_iter_s": first, "iters": len(times), "timed_s": spent, "median_iter_s": statistics.median(times)}


def measure(model: nn.Module, data: Batch, mode: str, device: torch.device, timing: Timing) -> dict:
    """Throughput, timing details and peak memory of `model` on `data`."""
    step, resident = make_step(model, data, mode)
    stats = time_step(step, device, timing)
    stats["seqs_per_s"] = data.inputs.shape[1] * stats["iters"] / stats["timed_s"]
    stats["peak_mem_mb"], memory = peak_memory(step, device, resident)
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


def measure_config(config: Config, data: Batch, device: torch.device, profile: BenchProfile, budget_mb: float,
                   seed: int, cache: dict) -> dict:
    """Measure one configuration; returns the row's fields (skipped and failed ones without
    throughput, the reason in extra). An infinite `budget_mb` skips the memory estimate."""
    params = model_params(config.model, profile.sizes, config.memory_size)
    extra = {"label": f"{config.model}({', '.join(f'{k}={v}' for k, v in params.items())})", "params": params}
    estimate = estimate_mb(config.model, params, config, cache) if budget_mb < float("inf") else None
    if estimate is not None:
        extra["estimate_mb"] = round(estimate, 1)
        if estimate > budget_mb:
            extra["skipped"] = f"estimated {estimate:,.0f} MB exceeds the {budget_mb:,.0f} MB budget"
            return {"extra": extra}
    try:
        model = build(config.model, params, device, seed)
        fields = {"n_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
        with cold_compile() if config.compiled else contextlib.nullcontext():
            if config.compiled:
                model.compile_step()
            stats = measure(model, data, config.mode, device, profile.timing)
    except Exception as error:  # noqa: BLE001 - one failed configuration must not lose the others
        extra["error"] = f"{type(error).__name__}: {error}"[:500]
        return {"extra": extra}
    finally:
        model = None
        if device.type == "cuda":   # give the next configuration the whole device
            gc.collect()
            torch.cuda.empty_cache()
    if config.compiled:
        stats["compile_s"] = max(0.0, stats["first_iter_s"] - stats["median_iter_s"])
        stats["compile_cache"] = "off (cold compile)"
        # a model whose forward never calls its compiled step would time the eager path: say so
        stats["compiled_graphs"] = int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        if not stats["compiled_graphs"]:
            stats["warning"] = "compile_step() returned True but nothing was compiled: this row timed the eager path"
    return {**fields, "seqs_per_s": stats.pop("seqs_per_s"), "peak_mem_mb": stats.pop("peak_mem_mb"),
            "extra": {**extra, **stats}}


def measure_reference(mode: str, data: Batch, device: torch.device, profile: BenchProfile, seed: int) -> dict:
    model = build(REFERENCE, {}, device, seed)
    stats = measure(model, data, mode, device, profile.timing)
    extra = {"label": "torch.nn.LSTM(9, 256, 1 layer) + Linear(256, 8), zero initial state", **stats}
    return {"n_params": sum(p.numel() for p in model.parameters()), "seqs_per_s": extra.pop("seqs_per_s"),
            "peak_mem_mb": extra.pop("peak_mem_mb"), "extra": extra}


def resolve_device(device: str) -> tuple[torch.device, str]:
    """The torch device (with its index on CUDA) and its description for the rows."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine")
        dev = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
        return dev, f"{dev} ({torch.cuda.get_device_name(dev)})"
    if dev.type != "cpu":
        raise ValueError(f"device {device!r}: only cpu and cuda are supported")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return dev, f"cpu ({cores} cores)"


def groups(configs: list[Config]) -> dict[tuple[str, int, int], list[Config]]:
    """Configurations by (mode, batch, steps): the key of their shared reference row."""
    found: dict[tuple[str, int, int], list[Config]] = {}
    for config in configs:
        found.setdefault((config.mode, config.batch, config.steps), []).append(config)
    return found


def make_row(common: dict, name: str, model: str, key: tuple, memory_size, fields: dict, ratio_to) -> dict:
    mode, batch, steps = key
    seqs = fields.get("seqs_per_s")
    ratio = seqs / ratio_to if seqs is not None and ratio_to else None
    extra = {**fields.get("extra", {}), "copy_length": (steps - 1) // 2}
    return {**common, "name": name, "model": model, "mode": mode, "batch": batch, "memory_size": memory_size,
            "seq_len": steps, "n_params": fields.get("n_params"), "seqs_per_s": seqs,
            "peak_mem_mb": fields.get("peak_mem_mb"), "ratio_to_lstm": ratio, "measured_at": time.time(),
            "extra_json": json.dumps(extra, sort_keys=True)}


def run_bench(models: list[str], device: str, store_path: str | None, json_path: str | None, profile="full",
              progress: bool = True, *, threads: int = 1, max_mem_mb: float | None = None, seed: int = 0) -> list[dict]:
    """Measure `models` (registry names) on `device` with `profile` (a PROFILES name or a
    BenchProfile); write the rows to the store at `store_path` and the JSON file at `json_path`
    where given, and return them (dicts keyed by the speed table's columns)."""
    prof = profile if isinstance(profile, BenchProfile) else PROFILES.get(profile)
    if prof is None:
        raise KeyError(f"unknown speed profile {profile!r} (known: {', '.join(PROFILES)})")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise KeyError(f"unknown models {unknown} (known: {', '.join(MODELS)})")
    dev, described = resolve_device(device)
    with intra_op_threads(threads):
        configs = plan(list(dict.fromkeys(models)), prof)
        bench_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        common = {"bench_id": bench_id, "device": described, "threads": threads, "torch_version": torch.__version__,
                  "seeds": 1}
        budget = max_mem_mb if max_mem_mb is not None else memory_budget_mb(dev)
        rows, total, estimates = [], len(configs) + len(groups(configs)), {}
        for key, members in groups(configs).items():
            data = copy_batch(key[1], key[2], dev, seed)
            ref_name = f"{REFERENCE}/{key[0]}/b{key[1]}/t{key[2]}"
            ref = make_row(common, ref_name, REFERENCE, key, None, measure_reference(key[0], data, dev, prof, seed),
                           None)
            ref["ratio_to_lstm"] = 1.0
            rows.append(ref)
            log(progress, len(rows), total, ref)
            for config in members:
                fields = measure_config(config, data, dev, prof, budget, seed, estimates)
                rows.append(make_row(common, config.name, config.model + ("+compile" if config.compiled else ""), key,
                                     config.memory_size, fields, ref["seqs_per_s"]))
                log(progress, len(rows), total, rows[-1])
            write(rows, store_path, json_path)   # after every group: an interrupted run keeps what it measured
    return rows


def log(progress: bool, done: int, total: int, row: dict) -> None:
    if progress:
        print(f"[{done}/{total}] {row['name']}: {describe(row)}", file=sys.stderr, flush=True)


def describe(row: dict) -> str:
    extra = json.loads(row["extra_json"])
    if row["seqs_per_s"] is None:
        return f"skipped: {extra['skipped']}" if "skipped" in extra else f"failed: {extra.get('error')}"
    text = f"{row['seqs_per_s']:,.1f} seq/s, {row['ratio_to_lstm']:.3f} x {REFERENCE}"
    text += f", compile {extra['compile_s']:.1f} s" if "compile_s" in extra else ""
    return text + (f" (warning: {extra['warning']})" if "warning" in extra else "")


def write(rows: list[dict], store_path: str | None, json_path: str | None) -> None:
    """Rows into the store's speed table (upserts) and into a JSON list (a temp file, renamed)."""
    if store_path:
        from results.store import Store

        store = Store(store_path)
        try:
            store.add_speed(rows)
        finally:
            store.close()
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(path)


def format_table(rows: list[dict]) -> str:
    """A plain-text table of benchmark rows, with the model configurations underneath."""
    if not rows:
        return "(no speed rows)"

    def number(value, spec):
        return "n/a" if value is None else format(value, spec)

    lines, labels = [("name", "seq/s", f"x {REFERENCE}", "peak MB", "params", "iters", "compile s", "note")], {}
    for row in rows:
        extra = json.loads(row["extra_json"])
        labels.setdefault(row["model"].removesuffix("+compile"), extra.get("label", ""))
        note = extra.get("warning") or (f"skipped: {extra['skipped']}" if "skipped" in extra else "")
        note = note or (f"failed: {extra['error']}" if "error" in extra else "")
        lines.append((row["name"], number(row["seqs_per_s"], ",.1f"), number(row["ratio_to_lstm"], ".3f"),
                      number(row["peak_mem_mb"], ",.1f"), number(row["n_params"], ","), str(extra.get("iters", "")),
                      number(extra.get("compile_s"), ".1f") if "compile_s" in extra else "", note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    first = rows[0]
    out = [f"speed bench {first['bench_id']}: {first['device']}, {first['threads']} thread(s), "
           f"torch {first['torch_version']}"]
    for line in lines:
        cells = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:-1], widths[1:]))]
        out.append(("  ".join(cells) + "  " + line[-1]).rstrip())
    return "\n".join(out + [""] + [f"{model}: {label}" for model, label in labels.items()])
