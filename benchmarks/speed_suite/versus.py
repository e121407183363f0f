"""A change's speed, measured in one process: each model as it is now against the same model at
another git revision, timed in alternating rounds.

Why: on the 2-core VM this project runs on, the machine's speed drifts by up to 2x within
minutes, so two `run_suite.py bench` runs made minutes apart (one per checkout) differ by more
than most changes do. Here the `models` package of REV is read from git (`git archive`) into a
temporary folder under another name (models_at_<sha>), both versions of each model are built from
the same seed and sizes (the interleaved rows': the paper's copy configuration, 41 steps), and
one training iteration of each (forward, cost, backward and an Adam step; make_step) is timed in
turns, so a slow minute slows both alike:

    python -m benchmarks.speed_suite.versus 6cca540 --models ntm,dnc --modes eager,compiled
    python run_suite.py bench --versus 6cca540 --models ntm,dnc   # the same, its defaults

prints, per (model, mode, batch), the median over rounds of now / then time per iteration with
its interquartile range: below 1 is faster now. Only models/ is taken from REV; what that
package imports from outside itself (tasks/, benchmarks/) is today's.
"""

from __future__ import annotations

import importlib
import io
import math
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch

from ntm_bench.benchmarks.harness import constructors
from ntm_bench.benchmarks.process.threads import intra_op_threads
from ntm_bench.benchmarks.process.allocator import tune_malloc
from ntm_bench.benchmarks.speed_suite.timing import make_step
from ntm_bench.benchmarks.speed_suite.configs import PAPER_SIZES, SMOKE_SIZES, WIDTH, copy_batch
from ntm_bench.benchmarks.speed_suite.interleaved import STEPS
from ntm_bench.benchmarks.speed_suite.timing import time_rounds
from ntm_bench.benchmarks.harness.values import MAX_INT
from ntm_bench.models import MODELS
from ntm_bench.benchmarks.harness.cli import Parser
from ntm_bench.benchmarks.harness.seeding import seeded
from ntm_bench.tasks.base import Batch

ROOT = Path(__file__).resolve().parents[2]
MODES = ("eager", "compiled")
# a revision's own imports of its models: `ntm_bench.models` since the one namespace, `models`
# before it
IMPORT = re.compile(r"^(\s*)(from|import)\s+(?:ntm_bench\.)?models(?=[\s.]|$)", re.MULTILINE)
# Four times the speed suite's largest batch: beyond it one paper-size iteration on a CPU takes
# seconds and its memory gigabytes, so a larger --batches is a typo.
MAX_BATCH = 1024
MAX_ROUND_S = 3600.0  # an hour per turn is already days per comparison


class Ratio(NamedTuple):
    """One (model, mode, batch): now / then time per training iteration over the rounds."""

    model: str
    mode: str
    batch: int
    median: float
    low: float  # first quartile
    high: float  # third quartile
    then_s: float  # REV's median time per iteration
    now_s: float


class VersusError(ValueError):
    """A revision, model or mode that cannot be compared (one line for the command line)."""


def resolve(rev: str, repo: Path) -> str:
    """The full commit hash of `rev` in `repo`."""
    found = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        raise VersusError(f"versus: {rev!r} is not a commit of the git repository {repo}")
    return found.stdout.strip()


def load_models_at(commit: str, repo: Path, folder: Path) -> dict:
    """REV's model registry: its models/ extracted under `folder` as the package models_at_<sha>,
    every `import models` / `from models` inside it renamed to that package, so that both versions
    live in one process without either seeing the other's modules."""
    name = f"models_at_{commit[:12]}"
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit, "models"],
        capture_output=True,
    )
    if archive.returncode != 0:
        raise VersusError(f"versus: commit {commit[:12]} has no models/ folder")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # the archive is this repository's own; the "data" filter exists from Python 3.11.4 on
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(folder, **safe)
    package = folder / name
    (folder / "models").rename(package)
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        source.write_text(IMPORT.sub(rf"\1\2 {name}", text), encoding="utf-8")
    for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[loaded]  # an earlier load's folder is gone
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name).MODELS
    finally:
        sys.path.remove(str(folder))


def build(cls, sizes: dict, seed: int, compiled: bool):
    """`cls` at the sizes its constructor accepts, from `seed`, compiled if asked (None where it
    has nothing to compile)."""
    params = {k: v for k, v in sizes.items() if k in constructors.keywords(cls)}
    model = seeded(seed, lambda: cls(WIDTH + 1, WIDTH, **params))
    if compiled and not model.compile_step():
        return None
    return model


def check_names(models: list[str], modes) -> None:
    """At least one model and one mode, every mode one of MODES and every model registered now;
    VersusError naming the flag."""
    if not models or not modes:
        raise VersusError("versus: --models and --modes need at least one name each")
    for mode in modes:
        if mode not in MODES:
            raise VersusError(f"versus: --modes: unknown mode {mode!r} (known: {', '.join(MODES)})")
    for name in models:
        if name not in MODELS:
            raise VersusError(f"versus: --models: unknown model {name!r}")


def paired_steps(
    then_models: dict, models: list[str], modes, data: Batch, sizes: dict, seed: int
) -> dict:
    """(model, mode, "then" or "now") -> one warmed-up (and so compiled) training step on `data`
    of that model built from REV's registry `then_models` or today's, both from `seed` at
    `sizes`; a compiled pair only where both versions have something to compile."""
    steps = {}
    for name in models:
        for mode in modes:
            pair = [
                build(registry[name], sizes, seed, mode == "compiled")
                for registry in (then_models, MODELS)
            ]
            if None in pair:
                continue  # nothing to compile: the eager row says it all
            for when, model in zip(("then", "now"), pair):
                step = make_step(model, data, "train").run
                step()  # warm-up; compiles
                steps[(name, mode, when)] = step
    return steps


def ratio(name: str, mode: str, batch: int, times: dict) -> Ratio:
    """The Ratio of (`name`, `mode`) at `batch` from time_rounds' `times` of paired_steps' keys:
    now over then round by round, its median and quartiles, and each version's median."""
    then, now = times[(name, mode, "then")], times[(name, mode, "now")]
    each = [b / a for a, b in zip(then, now)]
    low, _, high = statistics.quantiles(each, n=4) if len(each) > 1 else each * 3
    return Ratio(
        name,
        mode,
        batch,
        statistics.median(each),
        low,
        high,
        statistics.median(then),
        statistics.median(now),
    )


def compare(
    rev: str,
    models: list[str],
    *,
    modes=MODES,
    batches=(16,),
    rounds: int = 15,
    round_s: float = 1.0,
    sizes: dict | None = None,
    repo: Path = ROOT,
    seed: int = 0,
    threads: int = 1,
) -> list[Ratio]:
    """Each model of `models` now against itself at `rev` (module docstring). VersusError for
    a name, batch size or timing that cannot be compared, before anything is built."""
    check_numbers(batches, rounds, round_s)
    check_names(models, modes)
    commit = resolve(rev, repo)
    sizes = PAPER_SIZES if sizes is None else sizes
    device = torch.device("cpu")
    tune_malloc()
    ratios = []
    with tempfile.TemporaryDirectory() as folder, intra_op_threads(threads):
        then_models = load_models_at(commit, repo, Path(folder))
        for name in models:
            if name not in then_models:
                raise VersusError(f"versus: model {name!r} is not registered at {commit[:12]}")
        for batch in batches:
            data = copy_batch(batch, STEPS, device, seed)
            steps = paired_steps(then_models, models, modes, data, sizes, seed)
            times = time_rounds(steps, device, rounds, round_s)
            ratios += [
                ratio(name, mode, batch, times) for name, mode, when in steps if when == "now"
            ]
    return ratios


def format_ratios(ratios: list[Ratio], rev: str) -> str:
    lines = [f"time per training iteration, now / at {rev} (below 1: faster now)"]
    for r in ratios:
        lines.append(
            f"  {r.model:<12} {r.mode:<8} batch {r.batch:<4} {r.median:.3f} "
            f"(IQR {r.low:.3f}-{r.high:.3f}); then {r.then_s * 1e3:.1f} ms, "
            f"now {r.now_s * 1e3:.1f} ms"
        )
    return "\n".join(lines)


def parse_batches(text: str) -> tuple[int, ...]:
    """--batches "1,16" -> (1, 16), each size once; VersusError naming the flag."""
    try:
        return tuple(dict.fromkeys(int(b) for b in text.split(",")))
    except ValueError:
        raise VersusError(
            f"versus: --batches: expected a comma list of whole numbers, got {text!r}"
        ) from None


def check_numbers(batches, rounds: int, round_s: float) -> None:
    """Batch sizes whole numbers from 1 to MAX_BATCH, --rounds from 1 to MAX_INT, --round-s a
    finite number of seconds above 0 and at most MAX_ROUND_S (with nan, which fails every
    comparison, a turn silently shrank to two iterations; inf never ends one); VersusError
    naming the flag."""
    for batch in batches:
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
            raise VersusError(
                f"versus: --batches: sizes must be from 1 to {MAX_BATCH}, got {batch}"
            )
    if not batches:
        raise VersusError("versus: --batches needs at least one size")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_INT:
        raise VersusError(f"versus: --rounds must be from 1 to {MAX_INT}, got {rounds}")
    if not (math.isfinite(round_s) and 0 < round_s <= MAX_ROUND_S):
        raise VersusError(
            f"versus: --round-s must be a number of seconds above 0 and at most {MAX_ROUND_S:g}, "
            f"got {round_s}"
        )


def main(
    argv: list[str] | None = None, prog: str = "python -m benchmarks.speed_suite.versus"
) -> int:
    parser = Parser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog="Each round times every (model, mode, version) in turn for --round-s seconds.",
    )
    parser.add_argument("rev", help="the git revision to compare with (a commit, tag or branch)")
    parser.add_argument("--models", default="ntm,dnc", help="comma list (default ntm,dnc)")
    parser.add_argument("--modes", default="eager,compiled", help="eager, compiled or both")
    parser.add_argument("--batches", default="16", help="comma list of batch sizes (default 16)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of turns (default 15)")
    parser.add_argument("--round-s", type=float, default=1.0, help="seconds per turn (default 1)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a check, not a number)")
    args = parser.parse_args(argv)
    try:
        ratios = compare(
            args.rev,
            list(dict.fromkeys(m.strip() for m in args.models.split(",") if m.strip())),
            modes=tuple(dict.fromkeys(m.strip() for m in args.modes.split(",") if m.strip())),
            batches=parse_batches(args.batches),
            rounds=args.rounds,
            round_s=args.round_s,
            sizes=SMOKE_SIZES if args.smoke else None,
        )
    except VersusError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(format_ratios(ratios, args.rev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
