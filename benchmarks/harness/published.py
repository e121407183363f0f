"""Published results: the finished runs of a profile as text files in the repository, one per run,
so git diffs them, a later session imports them and trains only what is missing, and anyone
rebuilds the report from them without training.

    results/published/<profile>/<task>/<model>/seed<k>-<run_id>.json

Each file holds the run's row (config, status, provenance, convergence, final cost), its curve
points and evaluation rows one per line, and, for the lowest seed of each (model, task) (its
first finished run, where a sweep trains several), its memory trace rounded to 4 decimals (the
pictures need no more). Floats are written with Python's shortest round-trip repr, so an import
gives back the store's numbers exactly: the reproducibility test compares retrained curves with
these bit for bit.

    python -m benchmarks.harness.published export --store results/replicate.sqlite --profile P
    python -m benchmarks.harness.published import --store results/replicate.sqlite --profile P

An import checks every file (benchmarks/harness/run_document.py) before it writes anything, then
adds them all in one transaction: a bad file is named with its key and the store keeps its bytes. An
export only reads the store. A grid in ONE_COMMIT (the second one) is exported, and read back for
a report, only while all its runs name one commit and ran that commit's code unchanged.
"""

from __future__ import annotations

import collections
import functools
import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd

from ntm_bench.benchmarks.harness.cli import Parser, bad_input
from ntm_bench.benchmarks.process.destinations import check_destination
from ntm_bench.benchmarks.harness import run_document
from ntm_bench.benchmarks.harness.run_document import FINISHED, PublishedError
from ntm_bench.results.schema import StoreError
from ntm_bench.results.store import Store

PROG = "python -m benchmarks.harness.published"
ROOT = Path(__file__).resolve().parents[2] / "results" / "published"  # the published data
PATTERN = "seed*-*.json"  # a run's file; others under the folder (claims.md, ...) are not runs
# The grid whose claims table the README shows and the main job points to, and whose runs the
# reproducibility test retrains: `replicate` until the second grid (replicate_v2, trained at one
# commit) is complete, then that.
GRID = "replicate"
# Grids published from one commit's code, as it was committed (issue 21): export refuses to write,
# and rebuild (so every report from the files, and CI's claims check) to read, runs of such a
# profile that name more than one commit, or none, or code that differed from its commit.
ONE_COMMIT = ("replicate_v2",)
# lease bookkeeping, not results; and the trivial costs, derived from the config (import
# computes them: trivial_costs)
SKIPPED = ("owner", "lease_until", "trivial_json")
# left out where NULL: a run from before fingerprints exports byte-identical to its old file
LEFT_OUT_WHEN_NULL = ("fingerprint_json",)
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


def traced_runs(runs: pd.DataFrame) -> set[str]:
    """The runs whose memory trace is published: per (task, model) the lowest seed's, and among
    runs of that seed (a sweep trains one per rate) the first finished, so that a run landing
    later never takes the trace from a file already published."""
    order = runs.sort_values(["seed", "finished_at", "run_id"], kind="stable")
    return set(order.groupby(["task", "model"]).head(1).run_id)


def export(store: Store, profile: str, folder: Path) -> list[Path]:
    """Write every finished run of `profile` in `store` to `folder`; returns the files written
    (a run already published with the same content is rewritten identically)."""
    runs = store.runs()
    runs = runs[(runs.profile == profile) & runs.status.isin(FINISHED)]
    curves, evals = store.curves(), store.evals()
    traces = store.traces()
    traced = traced_runs(runs)
    written = []
    for run in runs.to_dict("records"):
        row = {k: plain(v) for k, v in run.items() if k not in SKIPPED}
        row = {k: v for k, v in row.items() if v is not None or k not in LEFT_OUT_WHEN_NULL}
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


def check_one_commit(profile: str, runs: list[dict]) -> None:
    """PublishedError, naming a run, where `profile` is one of ONE_COMMIT and its `runs` (run
    rows) do not all name the same commit, clean."""
    if profile not in ONE_COMMIT or not runs:
        return
    shas = [plain(run.get("git_sha")) for run in runs]  # a store's NULL reads as NaN
    commits = collections.Counter(shas)
    usual = commits.most_common(1)[0][0]
    odd = runs[next((i for i, sha in enumerate(shas) if sha != usual), 0)]

    def name(run: dict) -> str:
        return f"{run['model']} on {run['task']} seed {int(run['seed'])} (run {run['run_id']})"

    if len(commits) > 1:
        sha = plain(odd.get("git_sha"))
        problem = f"{name(odd)} names commit {sha}, {commits[usual]} others {usual}"
    elif usual is None:
        problem = f"{name(odd)} and the others name no commit"
    elif usual.endswith("+dirty"):
        problem = f"{name(odd)} and the others ran code that differed from commit {usual}"
    else:
        return
    raise PublishedError(
        f"{profile} is published from one commit (published.ONE_COMMIT), but {problem}"
    )


def read(folder: Path) -> list[dict]:
    """Every published run document under `folder`, in path order, each checked
    (benchmarks/harness/run_document.py); PublishedError for the first bad file or a run published
    twice."""
    documents, seen = [], {}
    for path in sorted(Path(folder).rglob(PATTERN)):
        loaded = run_document.load(path)
        run_id = loaded["run"]["run_id"]
        if run_id in seen:
            raise PublishedError(f"{path}: run.run_id: {run_id} is published in {seen[run_id]} too")
        seen[run_id] = path
        documents.append(loaded)
    return documents


def add(store: Store, documents: list[dict]) -> int:
    """Add checked `documents` (read) to `store` in one transaction; returns how many were new."""
    added = 0
    with store.transaction():
        for published in documents:
            run = dict(published["run"])
            run_id = run.pop("run_id")
            if store.status(run_id) in FINISHED:
                continue
            config = json.loads(run.pop("config_json"))
            identity = [run.pop(k) for k in ("model", "task", "seed", "profile")]
            store.register(run_id, *identity, config)
            run["trivial_json"] = trivial_costs(
                config["task"],
                json.dumps(config["task_params"], sort_keys=True),
                config["train"]["eval_size"],
            )
            finished_at = run.pop("finished_at", None)
            store.finish_run(
                run_id, published["curves"], published["evals"], published.get("trace"), **run
            )
            # finish_run stamps now; keep the original
            store.update_run(run_id, finished_at=finished_at)
            added += 1
    return added


@functools.cache
def trivial_costs(task_name: str, task_params_json: str, eval_size: int) -> str:
    """The trivial costs of a run's validation set (benchmarks.harness.runner.trivial_json), which a
    published file leaves out: they follow from its task and the fixed validation seed, exactly,
    on any processor. Cached: a task's seeds and models share them."""
    from ntm_bench.benchmarks.harness.evaluate import validation_set
    from ntm_bench.benchmarks.harness.runner import trivial_json
    from ntm_bench.benchmarks.harness.plugins import build_task

    params = json.loads(task_params_json)
    task = build_task(task_name, **params)
    validation = validation_set(task_name, params, task, eval_size)
    return trivial_json(task, validation)


def rebuild(profile: str, store_path: Path, folder: Path | None = None) -> Path:
    """A fresh store at `store_path` holding exactly the published runs of `profile` (any file
    already there is replaced): what `run_suite.py --report --published` reports from. Raises
    FileNotFoundError without the folder, PublishedError (before touching `store_path`) for a
    bad file in it, or for runs of a ONE_COMMIT profile from more than one commit."""
    folder = Path(folder) if folder is not None else ROOT / profile
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no published results for profile {profile!r} (no folder {folder})"
        )
    documents = read(folder)
    check_one_commit(profile, [document["run"] for document in documents])
    store_path = Path(store_path)
    for stale in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        stale.unlink(missing_ok=True)
    store = Store(store_path)
    try:
        add(store, documents)
    finally:
        store.close()
    return store_path


def import_command(store_path: str, folder: Path) -> int:
    """Check every file under `folder`, then add them to the store at `store_path`: nothing is
    written (no store created) when a file is bad or there is none."""
    if not folder.is_dir():
        return bad_input(PROG, f"no published folder {folder}")
    try:
        documents = read(folder)
    except PublishedError as error:
        return bad_input(PROG, error)
    if not documents:
        return bad_input(PROG, f"no published runs ({PATTERN}) under {folder}")
    try:
        store = Store(store_path)
    except StoreError as error:
        return bad_input(PROG, error)
    try:
        added = add(store, documents)
    except sqlite3.Error as error:
        return bad_input(PROG, f"cannot write results store {store_path}: {error}")
    finally:
        store.close()
    print(f"{added} runs imported from {folder} into {store_path}")
    return 0


def export_command(store_path: str, profile: str, folder: Path) -> int:
    """Write the finished runs of `profile` in the store (opened read-only) under `folder`."""
    try:
        check_destination("--dir", folder, "folder")
    except ValueError as error:
        return bad_input(PROG, error)
    try:
        store = Store(store_path, readonly=True)
    except StoreError as error:
        return bad_input(PROG, error)
    try:
        runs = store.runs()
        finished = runs[runs.status.isin(FINISHED)]
        if not (finished.profile == profile).any():
            profiles = ", ".join(sorted(finished.profile.unique())) or "none"
            return bad_input(
                PROG,
                f"results store {store_path} has no finished runs of profile {profile!r} "
                f"(finished runs of: {profiles})",
            )
        # what the folder will hold: the store's runs of the profile beside those already there
        ours = finished[finished.profile == profile].to_dict("records")
        there = read(folder) if folder.is_dir() else []
        fresh = {run["run_id"] for run in ours}
        check_one_commit(
            profile, ours + [d["run"] for d in there if d["run"]["run_id"] not in fresh]
        )
        written = export(store, profile, folder)
    except (StoreError, PublishedError) as error:
        return bad_input(PROG, error)
    except OSError as error:
        return bad_input(
            PROG, f"cannot write under {folder}: {error.strerror or error} ({error.filename})"
        )
    finally:
        store.close()
    print(f"{len(written)} runs written under {folder}")
    return 0


def main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
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
    if args.action == "export":
        return export_command(args.store, args.profile, folder)
    return import_command(args.store, folder)


if __name__ == "__main__":
    sys.exit(main())
