"""Published results: the finished runs of a profile as text files in the repository, one per run,
so git diffs them, a later session imports them and trains only what is missing, and anyone
rebuilds the report from them without training.

    results/published/<profile>/<task>/<model>/seed<k>-<run_id>.json

Each file holds the run's row (config, status, provenance, convergence, final cost), its curve
points and evaluation rows one per line, and, for the lowest seed of each (model, task), its
memory trace rounded to 4 decimals (the pictures need no more). Floats are written with Python's
shortest round-trip repr, so an import gives back the store's numbers exactly: the
reproducibility test compares retrained curves with these bit for bit.

    python -m results.published export --store results/replicate.sqlite --profile replicate
    python -m results.published import --store results/replicate.sqlite --profile replicate
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from results.store import Store
from benchmarks.cli import Parser

ROOT = Path(__file__).with_name("published")
FINISHED = ("done", "diverged")
SKIPPED = ("owner", "lease_until")  # claim bookkeeping, not results
CURVE_FIELDS = ("split", "step", "sequences", "cost_bits", "bit_errors", "wall_s")
EVAL_FIELDS = (
    "point",
    "axis",
    "value",
    "cost_bits",
    "bit_errors",
    "n",
    "memory_needed",
    "beyond_memory",
)
TRACE_DIGITS = 4
# INTEGER columns that pandas reads as floats when some run has NULL there (never converged).
INTEGER_COLUMNS = {"seed", "n_params", "threads", "converged_step", "converged_sequences"}


def plain(value):
    """A JSON-ready Python value from a pandas/numpy cell (NA and NaN become None)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def run_path(folder: Path, run: dict) -> Path:
    return Path(folder) / run["task"] / run["model"] / f"seed{run['seed']}-{run['run_id']}.json"


def rounded(array, digits: int = TRACE_DIGITS):
    """Nested lists of floats rounded to `digits` (memory traces: pictures, not numbers)."""
    if isinstance(array, list):
        return [rounded(a, digits) for a in array]
    return None if array is None else round(float(array), digits)


def dumps(document: dict) -> str:
    """JSON with one curve point, eval row or trace array per line: small diffs when one changes."""
    lines = ["{", f' "run": {json.dumps(document["run"], sort_keys=True)},']
    for key in ("curves", "evals"):
        rows = [json.dumps(row, sort_keys=True) for row in document[key]]
        lines.append(f' "{key}": [' + ("\n  " + ",\n  ".join(rows) + "\n ]," if rows else "],"))
    trace = document.get("trace")
    if trace is None:
        lines.append(' "trace": null')
    else:
        items = [f'  "{name}": {json.dumps(value)}' for name, value in sorted(trace.items())]
        lines.append(' "trace": {\n' + ",\n".join(items) + "\n }")
    return "\n".join(lines) + "\n}\n"


def export(store: Store, profile: str, folder: Path) -> list[Path]:
    """Write every finished run of `profile` in `store` to `folder`; returns the files written
    (a run already published with the same content is rewritten identically)."""
    runs = store.runs()
    runs = runs[(runs.profile == profile) & runs.status.isin(FINISHED)]
    curves, evals = store.curves(), store.evals()
    traces = store.traces()
    traced = set(runs.sort_values("seed").groupby(["task", "model"]).head(1).run_id)
    written = []
    for run in runs.to_dict("records"):
        row = {k: plain(v) for k, v in run.items() if k not in SKIPPED}
        row.update({k: int(row[k]) for k in INTEGER_COLUMNS if row.get(k) is not None})
        own_curves = curves[curves.run_id == run["run_id"]]
        own_evals = evals[evals.run_id == run["run_id"]]
        document = {
            "run": row,
            "curves": [
                {f: plain(c[f]) for f in CURVE_FIELDS} for c in own_curves.to_dict("records")
            ],
            "evals": [
                {
                    **{f: plain(e[f]) for f in EVAL_FIELDS},
                    # NULL reads as NaN where other rows of the frame have channels
                    "channels": None
                    if plain(e["channels_json"]) is None
                    else json.loads(e["channels_json"]),
                }
                for e in own_evals.to_dict("records")
            ],
            "trace": None,
        }
        trace = traces[traces.run_id == run["run_id"]]
        if run["run_id"] in traced and not trace.empty:
            arrays = trace.iloc[0]
            document["trace"] = {
                name: None if arrays[name] is None else rounded(arrays[name].tolist())
                for name in ("input", "target", "mask", "output", "read_weights", "write_weights")
            }
        path = run_path(folder, row)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(document), encoding="utf-8")
        written.append(path)
    return written


def read(folder: Path) -> list[dict]:
    """Every published run document under `folder`, in path order."""
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(Path(folder).rglob("seed*-*.json"))
    ]


def import_into(store: Store, folder: Path) -> int:
    """Put every published run under `folder` into `store` unless the store already has it
    finished; returns how many were added. A rerun of the profile then trains only the rest."""
    added = 0
    for document in read(folder):
        run = dict(document["run"])
        run_id = run.pop("run_id")
        if store.status(run_id) in FINISHED:
            continue
        store.register(
            run_id,
            run["model"],
            run["task"],
            run["seed"],
            run["profile"],
            json.loads(run["config_json"]),
        )
        fields = {
            k: v
            for k, v in run.items()
            if k not in ("model", "task", "seed", "profile", "config_json")
        }
        finished_at = fields.pop("finished_at", None)
        store.finish_run(
            run_id, document["curves"], document["evals"], document.get("trace"), **fields
        )
        # finish_run stamps now; keep the original
        store.update_run(run_id, finished_at=finished_at)
        added += 1
    return added


def rebuild(profile: str, store_path: Path, folder: Path | None = None) -> Path:
    """A fresh store at `store_path` holding exactly the published runs of `profile` (any file
    already there is replaced): what `run_suite.py --report --published` reports from."""
    folder = Path(folder) if folder is not None else ROOT / profile
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no published results for profile {profile!r} (no folder {folder})"
        )
    store_path = Path(store_path)
    for stale in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        stale.unlink(missing_ok=True)
    store = Store(store_path)
    try:
        import_into(store, folder)
    finally:
        store.close()
    return store_path


def main(argv=None) -> int:
    parser = Parser(prog="python -m results.published", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "action",
        choices=("export", "import"),
        help="export: store -> files; import: files -> store (finished runs are kept)",
    )
    parser.add_argument("--store", required=True, help="SQLite results store")
    parser.add_argument(
        "--profile", required=True, help="profile whose runs are published (e.g. replicate)"
    )
    parser.add_argument(
        "--dir", default=None, help="published folder (default: results/published/<profile>)"
    )
    args = parser.parse_args(argv)
    folder = Path(args.dir) if args.dir else ROOT / args.profile
    if args.action == "import" and not folder.is_dir():
        print(f"python -m results.published: error: no published folder {folder}", file=sys.stderr)
        return 2
    store = Store(args.store)
    try:
        if args.action == "export":
            print(f"{len(export(store, args.profile, folder))} runs written under {folder}")
        else:
            print(f"{import_into(store, folder)} runs imported from {folder} into {args.store}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
