"""What one training run of each (model, task) of a profile costs: training sequences per second
at the profile's batch size, eager or compiled, one intra-op thread. Used to set the budgets of a
profile so that its grid fits the machine.

    python -m benchmarks.speed_suite.cost --profile replicate [--models ntm,lstm] [--tasks copy]
                                          [--compile] [--rounds 3] [--round-s 2]
    python run_suite.py bench --cost replicate [--models ntm,lstm]   # the same, its defaults

Each (model, task) is built as its run would be (seed 1, benchmarks.harness.seeding.build_seeded),
with its optimizer, and warmed up (1 step eager, 3 compiled, which includes compiling); then all of
them are timed in turns (timing.time_rounds: `--rounds` rounds, each pair `--round-s` seconds a
round, optimizer steps on fresh batches), so the machine's drift slows every pair alike. One JSON
line per pair: sequences per second (the median over rounds, and the lowest and highest round),
the warm-up's seconds and the parameter count. Good for budgets; a speed claim between models is
a ratio from `run_suite.py bench --bench-profile interleaved` or `benchmarks.speed_suite.versus`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from ntm_bench.benchmarks.harness.cli import Parser, bad_input
from ntm_bench.benchmarks.speed_suite.timing import time_rounds

PROG = "python -m benchmarks.speed_suite.cost"


def prepared_step(spec, compiled: bool):
    """(one training step of `spec`'s run on a fresh batch, its model; warm-up seconds), or None
    when `compiled` and the model has nothing to compile."""
    from ntm_bench.benchmarks.harness.seeding import build_seeded
    from ntm_bench.benchmarks.harness.train import make_optimizer, train_step

    task, model = build_seeded(spec)
    if compiled and not model.compile_step():
        return None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, spec.train)
    data = torch.Generator().manual_seed(0)
    done = [0]

    def step() -> None:
        done[0] += 1
        batch = task.sample(spec.train.batch_size, data)
        train_step(model, optimizer, params, batch, spec.train, done[0])

    started = time.perf_counter()
    for _ in range(3 if compiled else 1):
        step()
    return step, model, time.perf_counter() - started


def measure(specs: list, compiled: bool, rounds: int, round_s: float) -> list[dict]:
    """One row per spec (skipping those with nothing to compile when `compiled`), timed in turns."""
    steps, rows = {}, {}
    for spec in specs:
        found = prepared_step(spec, compiled)
        if found is None:
            continue
        step, model, warm_s = found
        steps[(spec.model, spec.task)] = step
        rows[(spec.model, spec.task)] = {
            "model": spec.model,
            "task": spec.task,
            "compiled": compiled,
            "n_params": model.n_params(),
            "batch": spec.train.batch_size,
            "warm_s": round(warm_s, 1),
        }
    times = time_rounds(steps, torch.device("cpu"), rounds, round_s)
    for key, row in rows.items():
        per_round = [row["batch"] / t for t in times[key]]
        row["seq_per_s"] = round(statistics.median(per_round), 1)
        row["seq_per_s_range"] = [round(min(per_round), 1), round(max(per_round), 1)]
    return list(rows.values())


def main(argv=None, prog: str = PROG) -> int:
    from ntm_bench.benchmarks.harness.config import ConfigError, load_profile
    from ntm_bench.benchmarks.harness.plan import parse_names, resolve
    from ntm_bench.benchmarks.process.threads import intra_op_threads

    parser = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--profile", default="replicate", help="profile name or YAML path (default replicate)"
    )
    parser.add_argument(
        "--models", default="all", help="comma list or 'all' (the profile's models)"
    )
    parser.add_argument("--tasks", default="all", help="comma list or 'all' (the profile's tasks)")
    parser.add_argument(
        "--compile", action="store_true", help="time the compiled step (models that have one)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of turns, every pair once each (default 3)"
    )
    parser.add_argument(
        "--round-s", type=float, default=2.0, help="seconds of each pair's turn (default 2)"
    )
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        models = parse_names(
            args.models, list(profile.models), "model", default=list(profile.models)
        )
        tasks = parse_names(args.tasks, list(profile.tasks), "task", default=list(profile.tasks))
        if args.rounds < 1:
            raise ConfigError(f"--rounds must be at least 1, got {args.rounds}")
        if not args.round_s > 0 or args.round_s == float("inf"):
            raise ConfigError(f"--round-s must be a positive number of seconds, got {args.round_s}")
    except ConfigError as error:
        return bad_input(prog, error)
    specs = [resolve(profile, model, task, 1) for task in tasks for model in models]
    with intra_op_threads(1):
        for row in measure(specs, args.compile, args.rounds, args.round_s):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
