"""Trained models are kept: every finished run leaves its final weights beside its checkpoints,
one file per run_id holding the model's state and the config that rebuilds it.

    <checkpoints>/<run_id>.final.pt      {"state": state_dict, "config": the run's config,
                                          "profile": name}

(<checkpoints> is `--checkpoints`, by default checkpoints/ beside the store.) The resume
checkpoint (<run_id>.pt) goes once the result is stored; the weights stay until pruned on purpose:

    from ntm_bench.benchmarks.harness.trained import load_run
    model, task = load_run("results/results.sqlite", run_id)      # ready to evaluate, eval mode

    python -m benchmarks.harness.trained list  --store results/results.sqlite
    python -m benchmarks.harness.trained prune --store results/results.sqlite [--profile quick]
        [--run-id ID ...]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from ntm_bench.benchmarks.harness.cli import Parser, bad_input

PROG = "python -m benchmarks.harness.trained"
SUFFIX = ".final.pt"


class WeightsMissing(FileNotFoundError):
    """A run has no kept weights (never finished here, or pruned); the message says which and
    where."""


def default_checkpoints(store_path) -> Path:
    return Path(store_path).parent / "checkpoints"


def weights_path(checkpoints, run_id: str) -> Path:
    return Path(checkpoints) / f"{run_id}{SUFFIX}"


def save_weights(
    checkpoints, run_id: str, model: torch.nn.Module, config: dict, profile: str
) -> Path:
    """Write a finished run's final weights (temporary file, then rename: never half a file)."""
    path = weights_path(checkpoints, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state": model.state_dict(), "config": config, "profile": profile}, temporary)
    os.replace(temporary, path)
    return path


def load_run(store, run_id: str, checkpoints=None):
    """(model, task) of a finished run, the model rebuilt from its stored config with its final
    weights loaded, in eval mode. `store` is a results.store.Store or a path to one. Raises
    WeightsMissing when the weights were pruned or never kept, KeyError for an unknown run_id."""
    from ntm_bench.benchmarks.harness.plan import RunSpec
    from ntm_bench.benchmarks.harness.seeding import build_seeded
    from ntm_bench.results.store import Store

    opened = store if isinstance(store, Store) else Store(store, readonly=True)
    try:
        row = opened.db.execute(
            "SELECT config_json, profile, status FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        path = weights_path(checkpoints or default_checkpoints(opened.path), run_id)
    finally:
        if opened is not store:
            opened.close()
    if row is None:
        raise KeyError(f"no run {run_id!r} in the store")
    if not path.is_file():
        raise WeightsMissing(
            f"run {run_id} ({row[2]}) has no kept weights at {path}: pruned, or trained elsewhere "
            "(--checkpoints); retrain it to get them back"
        )
    spec = RunSpec.from_config(json.loads(row[0]), row[1])
    task, model = build_seeded(spec)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state"])
    return model.eval(), task


def kept(checkpoints) -> dict[str, Path]:
    """run_id -> its final weights, of every run with weights under `checkpoints`, in order."""
    return {p.name[: -len(SUFFIX)]: p for p in sorted(Path(checkpoints).glob(f"*{SUFFIX}"))}


def checkpoint_folder(args) -> Path:
    """The folder of kept weights; ValueError when --checkpoints names a file or nothing."""
    if args.checkpoints is None:
        return default_checkpoints(args.store)
    if not args.checkpoints.strip():
        raise ValueError("--checkpoints '': give a folder, or leave the flag out")
    folder = Path(args.checkpoints)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--checkpoints {folder} is a file, expected a folder")
    if not folder.exists():
        raise ValueError(f"--checkpoints {folder}: no such folder")
    return folder


def check_filters(runs, args) -> None:
    """ValueError when --profile or a --run-id names no run of the store: a typo would
    otherwise list or prune nothing and exit 0."""
    profiles = sorted(runs.profile.unique())
    if args.profile is not None and args.profile not in profiles:
        raise ValueError(
            f"--profile {args.profile!r}: no runs of it in {args.store} "
            f"(it has: {', '.join(profiles) or 'none'})"
        )
    for run_id in args.run_id:
        if run_id not in runs.index:
            raise ValueError(f"--run-id {run_id!r}: no such run in {args.store}")
        if args.profile is not None and runs.loc[run_id, "profile"] != args.profile:
            raise ValueError(
                f"--run-id {run_id!r} is a run of profile {runs.loc[run_id, 'profile']!r}, "
                f"not of --profile {args.profile!r}"
            )


def main(argv=None) -> int:
    """`python -m benchmarks.harness.trained list|prune`: exit 0, or 2 with one line on bad
    input."""
    from ntm_bench.results.schema import StoreError
    from ntm_bench.results.store import Store

    args = parser().parse_args(argv)
    try:
        store = Store(args.store, readonly=True)  # both actions only read the store
    except StoreError as error:
        return bad_input(PROG, error)
    try:
        runs = store.runs().set_index("run_id")
    finally:
        store.close()
    try:
        check_filters(runs, args)
        folder = checkpoint_folder(args)
    except ValueError as error:
        return bad_input(PROG, error)
    chosen = {
        run_id: path
        for run_id, path in kept(folder).items()
        if run_id in runs.index
        and (args.profile is None or runs.loc[run_id, "profile"] == args.profile)
        and (not args.run_id or run_id in args.run_id)
    }
    for run_id, path in chosen.items():
        run = runs.loc[run_id]
        print(
            f"{run_id}  {run.profile:<10} {run.model:<8} {run.task:<20} seed "
            f"{run.seed:<4} {path.stat().st_size / 1e6:.2f} MB"
        )
        if args.action == "prune":
            path.unlink()
    total = sum(p.stat().st_size for p in chosen.values()) / 1e6 if args.action == "list" else 0
    print(
        f"{len(chosen)} runs' weights "
        f"{'pruned' if args.action == 'prune' else f'kept, {total:.1f} MB'} in {folder}"
    )
    return 0


def parser() -> Parser:
    """The command line of `python -m benchmarks.harness.trained`."""
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "action", choices=("list", "prune"), help="list kept weights, or delete them"
    )
    parser.add_argument(
        "--store", default="results/results.sqlite", help="results store (default: %(default)s)"
    )
    parser.add_argument(
        "--checkpoints",
        default=None,
        help="checkpoint folder (default: checkpoints/ beside the store)",
    )
    parser.add_argument("--profile", default=None, help="only this profile's runs")
    parser.add_argument(
        "--run-id", action="append", default=[], help="only these runs (repeatable)"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
