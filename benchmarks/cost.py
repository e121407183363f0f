"""What one training run of each (model, task) of a profile costs: training sequences per second
at the profile's batch size, eager or compiled, one intra-op thread. Used to set the budgets of
the replicate profile so that its grid fits the machine.

    python -m benchmarks.cost --profile replicate [--models ntm,lstm] [--tasks copy] [--compile]

Each (model, task) is built as its run would be (seed 1), warmed up (1 step eager, 3 compiled,
which includes compiling), then timed over `--steps` optimizer steps on fresh batches. One JSON
line per pair: sequences per second, the warm-up's seconds and the parameter count. These are
single measurements on a machine whose speed drifts: good for budgets, not for speed claims
(use `run_suite.py --bench --bench-profile interleaved` for those).
"""

from __future__ import annotations

import json
import sys
import time

import torch
from ntm_bench.benchmarks.cli import Parser


def measure(spec, compiled: bool, steps: int) -> dict | None:
    """Sequences per second of `spec`'s training step; None when `compiled` and the model has
    nothing to compile."""
    from ntm_bench.benchmarks.seeding import build_seeded
    from ntm_bench.benchmarks.train import make_optimizer, train_step

    task, model = build_seeded(spec)
    if compiled and not model.compile_step():
        return None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, spec.train)
    data = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for step in range(3 if compiled else 1):
        train_step(
            model, optimizer, params, task.sample(spec.train.batch_size, data), spec.train, step + 1
        )
    warm = time.perf_counter()
    for step in range(steps):
        train_step(
            model, optimizer, params, task.sample(spec.train.batch_size, data), spec.train, step + 1
        )
    seconds = (time.perf_counter() - warm) / steps
    return {
        "model": spec.model,
        "task": spec.task,
        "compiled": compiled,
        "n_params": model.n_params(),
        "seq_per_s": round(spec.train.batch_size / seconds, 1),
        "warm_s": round(warm - started, 1),
    }


def main(argv=None) -> int:
    from ntm_bench.benchmarks.config import ConfigError, load_profile
    from ntm_bench.benchmarks.process.threads import intra_op_threads
    from ntm_bench.benchmarks.plan import parse_names, resolve

    parser = Parser(prog="python -m benchmarks.cost", description=__doc__.split("\n\n")[0])
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
        "--steps", type=int, default=8, help="timed optimizer steps per pair (default 8)"
    )
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        models = parse_names(
            args.models, list(profile.models), "model", default=list(profile.models)
        )
        tasks = parse_names(args.tasks, list(profile.tasks), "task", default=list(profile.tasks))
        if args.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {args.steps}")
    except ConfigError as error:
        print(f"python -m benchmarks.cost: error: {error}", file=sys.stderr)
        return 2
    with intra_op_threads(1):
        for task in tasks:
            for model in models:
                row = measure(resolve(profile, model, task, 1), args.compile, args.steps)
                if row is not None:
                    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
