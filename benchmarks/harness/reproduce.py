"""Retrain the first steps of a published run from its stored configuration and compare the
curve points with the published ones.

    python -m benchmarks.harness.reproduce results/published/replicate/copy/lstm/seed1-<run_id>.json
        [--steps 200]

A run is a pure function of its config: the model's initial parameters and the training batches
come from generators seeded by the run's seed, the validation set from one seeded by the task.
So where the numeric fingerprint is the one that trained it (the same processor, vector kernels,
BLAS, torch and numba versions and thread count: benchmarks/process/fingerprint.py) the
retrained points equal the published ones bit for bit; elsewhere, and for files published before
fingerprints, float rounding differs and they agree within fingerprint.TOLERANCE (relative; a bit
error count also within one flipped bit). Compiled runs (train.compile) are retrained compiled.

The file is checked as an import checks it (benchmarks/harness/run_document.py), and its model and
task must be ones this code can build: a bad file is one line naming the file and the key, exit code
2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import NamedTuple

from ntm_bench.benchmarks.harness.cli import Parser, bad_input
from ntm_bench.benchmarks.harness.config import ConfigError
from ntm_bench.benchmarks.process import fingerprint
from ntm_bench.benchmarks.process.fingerprint import agree
from ntm_bench.benchmarks.process.threads import worker_threads
from ntm_bench.benchmarks.harness import run_document
from ntm_bench.benchmarks.harness.run_document import PublishedError

PROG = "python -m benchmarks.harness.reproduce"
COMPARED = ("split", "step", "sequences", "cost_bits", "bit_errors")


class Replay(NamedTuple):
    """Retrained against published curve points up to `steps`; `exact` when this process's
    fingerprint is the one that trained the run (and so bit-for-bit equality is expected)."""

    published: list[dict]
    retrained: list[dict]
    exact: bool
    flips: float = 0.0  # a bit error mean's allowance where not exact: one bit in its smallest set

    def mismatches(self) -> list[str]:
        """One line per curve point that differs (beyond TOLERANCE where not exact)."""
        lines = (
            []
            if len(self.published) == len(self.retrained)
            else [f"{len(self.published)} published points, {len(self.retrained)} retrained"]
        )
        for old, new in zip(self.published, self.retrained):
            for field in COMPARED:
                a, b = old[field], new[field]
                flips = self.flips if field == "bit_errors" else 0.0
                same = a == b if isinstance(a, str) else agree(a, b, self.exact, flips)
                if not same:
                    lines.append(
                        f"{old['split']} step {old['step']}: {field} published {a!r}, retrained "
                        f"{b!r}"
                    )
        return lines


def same_processor(run: dict) -> bool:
    """Whether this process's fingerprint is the one that trained `run` (its thread count set
    first); False for a run published before fingerprints."""
    return fingerprint.same(run.get("fingerprint_json"), fingerprint.fingerprint("cpu"))


def replay(document: dict, steps: int) -> Replay:
    """Retrain the published run `document` (results/published format) for `steps` optimizer
    steps and return its curve points beside the published ones up to that step."""
    from ntm_bench.benchmarks.harness.plan import RunSpec
    from ntm_bench.benchmarks.harness.runner import prepare
    from ntm_bench.benchmarks.harness.train import OneModel, train

    run = document["run"]
    spec = RunSpec.from_config(json.loads(run["config_json"]), run["profile"])
    short = dataclasses.replace(spec, train=dataclasses.replace(spec.train, steps=steps))
    worker_threads(int(run.get("threads") or 1))
    try:
        task, model, data, validation, _ = prepare(short, "cpu")
    except (KeyError, TypeError, ValueError) as error:
        # a config whose run_id was recomputed after an edit passes the file's checks
        raise ConfigError(f"run.config_json: cannot build its model and task ({error})") from None
    if short.train.compile:
        model.compile_step()
    # A shorter run adds a last point at `steps` that the full run has only if `steps` falls on
    # its log and evaluation cadence: compare the points both have.
    (result,) = train(OneModel(model, short.train, data), task, short.train, validation)
    keep = {(c["split"], c["step"]) for c in document["curves"]}
    retrained = [c for c in result.curves if (c["split"], c["step"]) in keep]
    published = [c for c in document["curves"] if c["step"] <= steps]
    flips = 1 / min(short.train.batch_size, short.train.eval_size)
    return Replay(
        sorted(published, key=key), sorted(retrained, key=key), same_processor(run), flips
    )


def key(point: dict) -> tuple:
    return point["split"], point["step"]


def read_run(path: Path) -> dict:
    """The published run at `path`, checked as an import checks it and with a model and task this
    code can build; PublishedError naming the file and the key otherwise."""
    from ntm_bench.benchmarks.harness.plugins import PluginError, lookup, registry

    published = run_document.read(path)
    run_document.check(path, published)
    config = run_document.config(path, published["run"])
    for kind, name in (("models", "model"), ("tasks", "task")):
        try:
            lookup(kind, config[name])
        except (KeyError, TypeError, ValueError) as error:  # PluginError is a ValueError
            known = ", ".join(registry(kind))
            problem = (
                error if isinstance(error, PluginError) else f"unknown {name} (known: {known})"
            )
            raise PublishedError(
                f"{path}: run.config_json.{name}: {config[name]!r}: {problem}"
            ) from None
    run_document.check_identity(path, published["run"], config)
    run_document.check_bits(path, published, config)
    return published


def main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "run", help="a published run file (results/published/<profile>/<task>/<model>/*.json)"
    )
    parser.add_argument(
        "--steps", type=int, default=200, help="optimizer steps to retrain (default 200)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        return bad_input(PROG, "--steps must be at least 1")
    path = Path(args.run)
    try:
        published = read_run(path)
        first = min(point["step"] for point in published["curves"])
        if args.steps < first:
            # nothing to compare would read as "all equal"
            return bad_input(
                PROG,
                f"--steps {args.steps} retrains no published point of {path}: the first is at "
                f"step {first}",
            )
        result = replay(published, args.steps)
    except PublishedError as error:
        return bad_input(PROG, error)
    except ConfigError as error:
        return bad_input(PROG, f"{path}: {error}")
    problems = result.mismatches()
    how = (
        "bit for bit (same fingerprint)"
        if result.exact
        else f"within {fingerprint.TOLERANCE:g} relative (another processor or settings, "
        "or a run published before fingerprints)"
    )
    for line in problems:
        print(line)
    print(
        f"{len(result.published)} curve points up to step {args.steps}: "
        + ("all equal " + how if not problems else f"{len(problems)} differ (compared {how})")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
