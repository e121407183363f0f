"""What the speed benchmark (benchmarks/speed_suite/bench.py, and interleaved.py) hands out: its
rows (dicts keyed by the columns of the store's speed table), a progress line per row, the rows
in that table and in a JSON file, and the plain-text table that run_suite.py --bench prints."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import torch

from ntm_bench.benchmarks.process.allocator import tune_malloc
from ntm_bench.benchmarks.process.fingerprint import fingerprint
from ntm_bench.benchmarks.speed_suite.configs import REFERENCE


def common_fields(device: str, threads: int) -> dict:
    """The columns every row of one run shares: a new bench_id (the time and a random suffix),
    the `device` as described, the intra-op `threads`, torch's version and the processor's
    numeric fingerprint (benchmarks/process/fingerprint.py), which says which CPU a speed is of."""
    found = {**fingerprint("cuda" if device.startswith("cuda") else "cpu"), "threads": threads}
    return {
        "bench_id": f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}",
        "device": device,
        "threads": threads,
        "torch_version": torch.__version__,
        "fingerprint_json": json.dumps(found, sort_keys=True),
    }


def make_row(
    common: dict,
    name: str,
    model: str,
    key: tuple,
    memory_size,
    fields: dict,
    ratio: float | None,
    seeds: int = 1,
) -> dict:
    """One row of the speed table: the run's `common` columns, `name`, `model`, `key` (mode,
    batch, steps), `memory_size` and `seeds`, from a measurement's `fields` (n_params,
    seqs_per_s, peak_mem_mb, extra; absent ones None) its throughput, `ratio` as ratio_to_lstm
    (its speed in reference speeds, timed in turns with it; None for a row not measured), and
    extra as extra_json with the copy length and the allocator's tuning added."""
    mode, batch, steps = key
    seqs = fields.get("seqs_per_s")
    extra = {**fields.get("extra", {}), "copy_length": (steps - 1) // 2, "allocator": tune_malloc()}
    return {
        **common,
        "name": name,
        "model": model,
        "mode": mode,
        "batch": batch,
        "memory_size": memory_size,
        "seq_len": steps,
        "seeds": seeds,
        "n_params": fields.get("n_params"),
        "seqs_per_s": seqs,
        "peak_mem_mb": fields.get("peak_mem_mb"),
        "ratio_to_lstm": ratio,
        "measured_at": time.time(),
        "extra_json": json.dumps(extra, sort_keys=True),
    }


def log(progress: bool, done: int, total: int, row: dict) -> None:
    """One progress line on stderr for a measured row, where `progress` asks for it."""
    if progress:
        print(f"[{done}/{total}] {row['name']}: {describe(row)}", file=sys.stderr, flush=True)


def describe(row: dict) -> str:
    """A row's result in a few words: throughput and ratios, or why it has none."""
    extra = json.loads(row["extra_json"])
    if row["seqs_per_s"] is None:
        return (
            f"skipped: {extra['skipped']}"
            if "skipped" in extra
            else f"failed: {extra.get('error')}"
        )
    text = f"{row['seqs_per_s']:,.1f} seq/s, {row['ratio_to_lstm']:.3f} x {REFERENCE}"
    text += f", compile {extra['compile_s']:.1f} s" if "compile_s" in extra else ""
    text += (
        f", {extra['wall_vs_one_seed']:.2f} x one seed's step time"
        if "wall_vs_one_seed" in extra
        else ""
    )
    return text + (f" (warning: {extra['warning']})" if "warning" in extra else "")


def write(rows: list[dict], store_path: str | None, json_path: str | None) -> None:
    """Rows into the store's speed table (upserts) and into a JSON list (a temp file, renamed)."""
    if store_path:
        from ntm_bench.results.store import Store

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


COLUMNS = (
    "name",
    "seq/s",
    f"x {REFERENCE}",
    "peak MB",
    "params",
    "rounds",
    "compile s",
    "x 1 seed",
    "note",
)
SEEDS_NOTE = (
    "/sK: K seeds trained as one batched model; seq/s counts every seed's sequences; x 1 "
    "seed: time per iteration over the same model's one-seed row (same batch, both eager "
    "or both compiled)"
)


def number(value, spec: str) -> str:
    """`value` formatted with `spec`, or "n/a" for None."""
    return "n/a" if value is None else format(value, spec)


def cells(row: dict, extra: dict) -> list[str]:
    """The table's cells (COLUMNS) of one benchmark row, whose extra_json is `extra`: the note is
    the row's warning, or why it was skipped or failed."""
    note = extra.get("warning") or (f"skipped: {extra['skipped']}" if "skipped" in extra else "")
    note = note or (f"failed: {extra['error']}" if "error" in extra else "")
    return [
        row["name"],
        number(row["seqs_per_s"], ",.1f"),
        number(row["ratio_to_lstm"], ".3f"),
        number(row["peak_mem_mb"], ",.1f"),
        number(row["n_params"], ","),
        str(extra.get("rounds", "")),
        number(extra.get("compile_s"), ".1f") if "compile_s" in extra else "",
        number(extra.get("wall_vs_one_seed"), ".2f") if row.get("seeds", 1) > 1 else "",
        note,
    ]


def aligned(lines: list) -> list[str]:
    """`lines` of cells as text: the names left-aligned, the numbers right-aligned, each column
    as wide as its widest cell, the note last and unpadded (trailing blanks dropped)."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    out = []
    for line in lines:
        padded = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:-1], widths[1:]))]
        out.append(("  ".join(padded) + "  " + line[-1]).rstrip())
    return out


def format_table(rows: list[dict]) -> str:
    """A plain-text table of benchmark rows, with the model configurations underneath."""
    if not rows:
        return "(no speed rows)"
    lines, labels = [COLUMNS], {}
    for row in rows:
        extra = json.loads(row["extra_json"])
        labels.setdefault(row["model"].removesuffix("+compile"), extra.get("label", ""))
        lines.append(cells(row, extra))
    first = rows[0]
    out = [
        f"speed bench {first['bench_id']}: {first['device']}, {first['threads']} thread(s), "
        f"torch {first['torch_version']}",
        *aligned(lines),
    ]
    if any(row.get("seeds", 1) > 1 for row in rows):
        out += ["", SEEDS_NOTE]
    return "\n".join(out + [""] + [f"{model}: {label}" for model, label in labels.items()])
