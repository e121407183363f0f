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
import gc
import inspect
import json
import os
import re
import resource
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from models import MODELS
from tasks.base import Batch, cost_bits
from tasks.copy import Copy

MB = 2**20
WIDTH = 8                     # copy's bit width: input 9 (with the delimiter), output 8
REFERENCE = "lstm_ref"
SWEEP_MODELS = ("ntm", "dnc")  # the memory models whose memory size and sequence length are swept
PAPER_SIZES = {"controller_size": 100, "memory_size": 128, "memory_width": 20, "read_heads": 1, "write_heads": 1,
               "hidden_size": 256, "num_layers": 3}  # each model takes the ones its constructor accepts
SMOKE_SIZES = {"controller_size": 8, "memory_size": 8, "memory_width": 4, "read_heads": 1, "write_heads": 1,
               "hidden_size": 8, "num_layers": 1}


@dataclass(frozen=True)
class Timing:
    burn_in: int = 2          # untimed iterations after the first (which compiles, where it does)
    min_iters: int = 3        # timed iterations, at least...
    min_s: float = 2.0        # ...and at least this many seconds of them...
    max_s: float = 30.0       # ...unless this many seconds have passed (at least one iteration)


@dataclass(frozen=True)
class BenchProfile:
    name: str
    batches: tuple[int, ...]                 # main-grid batch sizes
    modes: tuple[str, ...]                   # "forward" and/or "train"
    timing: Timing = Timing()
    steps: int = 41                          # main-grid time steps: copy length 20, delimiter, 20 outputs
    compile: bool = True                     # "+compile" variants where compile_step() returns True
    memory_sizes: tuple[int, ...] = ()       # memory sweep, at `steps`
    seq_lens: tuple[int, ...] = ()           # length sweep in time steps, at sizes["memory_size"]
    sweep_batch: int = 16
    sizes: dict = field(default_factory=lambda: dict(PAPER_SIZES))


PROFILES = {
    "full": BenchProfile("full", (1, 16, 256), ("forward", "train"), memory_sizes=(128, 512, 2048, 8192),
                         seq_lens=(20, 100, 500, 1000)),
    "quick": BenchProfile("quick", (1, 16), ("train",), Timing(burn_in=1, min_iters=3, min_s=0.5, max_s=3.0)),
    # for tests: every code path (both modes, compile variants, both sweeps) at toy sizes
    "smoke": BenchProfile("smoke", (1, 2), ("forward", "train"), Timing(burn_in=0, min_iters=1, min_s=0.0, max_s=0.05),
                          steps=5, memory_sizes=(8, 16), seq_lens=(3, 7), sweep_batch=2, sizes=dict(SMOKE_SIZES)),
}


class Config(NamedTuple):
    model: str
    compiled: bool
    mode: str
    batch: int
    memory_size: int | None   # None for models without a memory
    steps: int

    @property
    def name(self) -> str:
        model = self.model + ("+compile" if self.compiled else "")
        memory = f"/n{self.memory_size}" if self.memory_size is not None else ""
        return f"{model}/{self.mode}/b{self.batch}{memory}/t{self.steps}"


class ReferenceLSTM(nn.Module):
    """The yardstick: torch.nn.LSTM(9, hidden, 1 layer) from a zero state, then Linear(hidden, 8)."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.rnn = nn.LSTM(WIDTH + 1, hidden)
        self.out = nn.Linear(hidden, WIDTH)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(inputs)[0])


# -- models and data ---------------------------------------------------------------------------

def accepted_params(cls) -> set[str]:
    """Constructor keywords of a model class, following **params up its bases (ntm_ff -> NTM)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__:
            continue
        params = inspect.signature(klass.__dict__["__init__"]).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - {"self", "input_size", "output_size"}


def model_params(name: str, sizes: dict, memory_size: int | None) -> dict:
    """The sizes that model `name` accepts, with the memory size of the configuration."""
    params = {k: v for k, v in sizes.items() if k in accepted_params(MODELS[name])}
    if memory_size is not None:
        params["memory_size"] = memory_size
    return params


def build(name: str, params: dict, device: torch.device, seed: int) -> nn.Module:
    """A model (REFERENCE or a registry name) on `device`, initialized from `seed` without
    touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ReferenceLSTM() if name == REFERENCE else MODELS[name](WIDTH + 1, WIDTH, **params)
    return model.to(device)


def copy_batch(batch: int, steps: int, device: torch.device, seed: int) -> Batch:
    """A fixed copy batch of exactly `steps` time steps: copy length (steps - 1) // 2, and one
    unscored zero step at the end when `steps` is even."""
    length = (steps - 1) // 2
    data = Copy(WIDTH, length, length).sample(batch, torch.Generator().manual_seed(seed), length=length)
    pad = steps - data.inputs.shape[0]
    return Batch(*(torch.cat([t, t.new_zeros(pad, *t.shape[1:])]).to(device) for t in data))


def plan(models: list[str], profile: BenchProfile) -> list[Config]:
    """Every configuration to measure, main grid first, without duplicates."""
    def memory(name, size=profile.sizes.get("memory_size")):
        return size if "memory_size" in accepted_params(MODELS[name]) else None

    configs = []
    for mode in profile.modes:
        for batch in profile.batches:
            for name in models:
                configs.append(Config(name, False, mode, batch, memory(name), profile.steps))
                # compile_step() only wraps the step here; compilation happens at the first call
                if mode == "train" and profile.compile and build(name, model_params(name, profile.sizes, None),
                                                                 torch.device("cpu"), 0).compile_step():
                    configs.append(Config(name, True, mode, batch, memory(name), profile.steps))
    for name in (m for m in models if m in SWEEP_MODELS):
        configs += [Config(name, False, "train", profile.sweep_batch, memory(name, n), profile.steps)
                    for n in profile.memory_sizes]
        configs += [Config(name, False, "train", profile.sweep_batch, memory(name), t) for t in profile.seq_lens]
    return list(dict.fromkeys(configs))


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


def proc_status_mb(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MB if sys.platform == "darwin" else rss / 1024   # bytes on macOS, KiB on Linux


def peak_memory(step, device: torch.device, resident) -> tuple[float, dict]:
    """Peak memory of one iteration in MB, and how it was measured (module docstring)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync(device)
        return torch.cuda.max_memory_allocated(device) / MB, {"peak_mem_method": "cuda max_memory_allocated"}
    alive = sum(t.untyped_storage().nbytes() for t in {t.untyped_storage().data_ptr(): t for t in resident()}.values()) / MB
    libc = ctypes.util.find_library("c")
    if libc and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)             # return free heap, so reuse of it shows as growth
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = proc_status_mb("VmRSS")
        step()
        growth, method = proc_status_mb("VmHWM") - before, "tensors alive before + VmHWM growth (clear_refs reset)"
    except OSError:
        before = max_rss_mb()
        step()
        growth, method = max_rss_mb() - before, "tensors alive before + ru_maxrss growth (lower bound)"
    return alive + growth, {"peak_mem_method": method, "alive_mb": round(alive, 3), "rss_growth_mb": round(growth, 3)}


class AllocationCounter(TorchDispatchMode):
    """Sums the bytes of every tensor an op allocates (views and in-place results excluded)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if all(r.alias_info is None for r in func._schema.returns):
            self.bytes += sum(t.untyped_storage().nbytes() for t in (out if isinstance(out, (tuple, list)) else [out])
                              if isinstance(t, torch.Tensor))
        return out


def estimate_mb(name: str, params: dict, config: Config, cache: dict) -> float | None:
    """An upper bound on a configuration's memory: the parameters (x4 in training: gradients and
    Adam's two moments) plus everything a forward allocates, counted on the meta device for one
    sequence of 2 and of 4 steps and extrapolated linearly in steps and batch. None where the model
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
    return (factor * params_bytes + config.batch * (two + per_step * (config.steps - 2))) / MB


def measure(model: nn.Module, data: Batch, mode: str, device: torch.device, timing: Timing) -> dict:
    """Throughput, timing details and peak memory of `model` on `data`."""
    step, resident = make_step(model, data, mode)
    stats = time_step(step, device, timing)
    stats["seqs_per_s"] = data.inputs.shape[1] * stats["iters"] / stats["timed_s"]
    stats["peak_mem_mb"], memory = peak_memory(step, device, resident)
    return {**stats, **memory}


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
        if config.compiled:
            torch._dynamo.reset()                      # compile from scratch: an honest compile_s
            torch._dynamo.utils.counters.clear()
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


def memory_budget_mb(device: torch.device) -> float:
    """Half the available RAM (the machine is shared), or 80% of the free GPU memory."""
    if device.type == "cuda":
        return 0.8 * torch.cuda.mem_get_info(device)[0] / MB
    try:
        return 0.5 * int(re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1)) / 1024
    except (OSError, AttributeError):
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB


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
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        configs = plan(list(dict.fromkeys(models)), prof)
        bench_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        common = {"bench_id": bench_id, "device": described, "threads": threads, "torch_version": torch.__version__,
                  "seeds": 1}
        budget = max_mem_mb if max_mem_mb is not None else memory_budget_mb(dev)
        rows, total, estimates = [], len(configs) + len(groups(configs)), {}
        for key, members in groups(configs).items():
            data = copy_batch(key[1], key[2], dev, seed)
            ref_name = f"{REFERENCE}/{key[0]}/b{key[1]}/t{key[2]}"
            ref = make_row(common, ref_name, REFERENCE, key, None, measure_reference(key[0], data, dev, prof, seed), None)
            ref["ratio_to_lstm"] = 1.0
            rows.append(ref)
            log(progress, len(rows), total, ref)
            for config in members:
                fields = measure_config(config, data, dev, prof, budget, seed, estimates)
                rows.append(make_row(common, config.name, config.model + ("+compile" if config.compiled else ""), key,
                                     config.memory_size, fields, ref["seqs_per_s"]))
                log(progress, len(rows), total, rows[-1])
    finally:
        torch.set_num_threads(previous)
    write(rows, store_path, json_path)
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
    """Rows into the store's speed table and into a JSON list (written to a temp file, renamed)."""
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
    head = ("name", "seq/s", f"x {REFERENCE}", "peak MB", "params", "iters", "compile s")
    lines, labels = [], {}
    for row in rows:
        extra = json.loads(row["extra_json"])
        labels.setdefault(row["model"].removesuffix("+compile"), extra.get("label", ""))
        if row["seqs_per_s"] is None:
            lines.append((row["name"], describe(row)))
            continue
        lines.append((row["name"], f"{row['seqs_per_s']:,.1f}", f"{row['ratio_to_lstm']:.3f}",
                      f"{row['peak_mem_mb']:,.1f}", f"{row['n_params']:,}", str(extra["iters"]),
                      f"{extra['compile_s']:.1f}" if "compile_s" in extra else ""))
    widths = [max(len(line[i]) for line in [head, *lines] if len(line) > i and len(line) == len(head))
              for i in range(len(head))]
    first = rows[0]
    out = [f"speed bench {first['bench_id']}: {first['device']}, {first['threads']} thread(s), torch {first['torch_version']}"]
    for line in [head, *lines]:
        if len(line) == len(head):
            out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        else:
            out.append(f"{line[0].ljust(widths[0])}  {line[1]}")
    out += [""] + [f"{model}: {label}" for model, label in labels.items()]
    return "\n".join(out)
