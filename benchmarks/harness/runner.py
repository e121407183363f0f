"""One run, start to finish, in whatever process the executor chose: seed, build, resume from the
checkpoint if there is one, train, evaluate, and return a plain dict of results for the driver to
write. Workers never touch the store.

Seeds: the run seed is split into two independent generators, one for the model's initial
parameters and one for the training data. Model construction uses torch's global RNG, so it runs
inside `torch.random.fork_rng` seeded from the init stream: the global state outside is left as
it was and nothing the caller did to it changes the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from ntm_bench.benchmarks.process.faults import maybe_kill
from ntm_bench.benchmarks.process.fingerprint import fingerprint
from ntm_bench.benchmarks.harness.devices import resolve_device
from ntm_bench.benchmarks.harness.evaluate import generalization, trace, validation_set
from ntm_bench.benchmarks.harness.plan import RunSpec
from ntm_bench.benchmarks.harness.seeding import build_seeded, derived_seed, seeded
from ntm_bench.benchmarks.harness.cadence import CHECKPOINT_FORMAT, Diverged
from ntm_bench.benchmarks.harness.train import OneModel, SeedRun, train
from ntm_bench.models.base import SequenceModel
from ntm_bench.benchmarks.harness.trained import save_weights
from ntm_bench.tasks.base import Batch, Task

CHECKPOINT_SUFFIX = ".pt"


def checkpoint_path(directory: Path, run_id: str) -> Path:
    return Path(directory) / f"{run_id}{CHECKPOINT_SUFFIX}"


def save_checkpoint(path: Path, snapshot: dict) -> None:
    """Write to a temporary file and rename, so a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(snapshot, temporary)
    maybe_kill("checkpoint")
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict | None:
    """The snapshot at `path`, or None if there is none; a corrupt file is set aside with a
    warning, and one of another format (an older version's) is a ValueError that says so."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file: keep it for inspection, start over
        aside = path.with_suffix(".corrupt")
        os.replace(path, aside)
        warnings.warn(
            f"checkpoint {path} is unreadable ({error.__class__.__name__}); moved to {aside}, "
            "the run restarts from scratch",
            stacklevel=2,
        )
        return None
    found = saved.get("format", 1) if isinstance(saved, dict) else None
    if found != CHECKPOINT_FORMAT:
        # not read, not replaced: the user decides whether its progress is worth an old version
        raise ValueError(
            f"checkpoint {path} has format {found}, this version of ntm-bench reads format "
            f"{CHECKPOINT_FORMAT} only: resume it with the version that wrote it, or delete it to "
            "train the run from scratch"
        )
    return saved


PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # benchmarks/harness/ up two


def git_sha(root: Path = PACKAGE_ROOT) -> str | None:
    """The commit of the checkout `root` (this code's, unless told), with "+dirty" when a Python
    file in it (tracked, or new and not ignored) differs from that commit; None where `root` is
    not a checkout's top folder (an installed wheel)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=root, timeout=5
        ).stdout.strip()

    try:
        # a wheel installed into a virtual environment inside some checkout is not that checkout
        if git("rev-parse", "--show-toplevel") != str(Path(root).resolve()):
            return None
        commit = git("rev-parse", "--short=12", "HEAD")
        return commit + "+dirty" if git("status", "--porcelain", "--", "*.py") else commit
    except (OSError, subprocess.SubprocessError):
        return None


# Read once, when the process loads the code: a process that outlives a commit (a grid of runs
# trains for hours) goes on running the code it loaded, and its runs must name that code's commit,
# not the checkout's HEAD when each run starts.
CODE_COMMIT = git_sha()


def provenance(device: str) -> dict:
    """Where and with what a run executed, recorded beside its numbers: the device, threads,
    torch version and commit, and the numeric fingerprint (the processor, its vector kernels,
    the BLAS) that says where its floats reproduce bit for bit."""
    name = resolve_device(device)[1]
    return {
        "device": name,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "git_sha": CODE_COMMIT,
        "fingerprint_json": json.dumps(fingerprint(device), sort_keys=True),
    }


class Prepared(NamedTuple):
    """A run about to train."""

    task: Task
    model: SequenceModel
    data: torch.Generator  # draws the training batches
    validation: Batch  # the fixed validation set
    result: dict  # the result fields known before training (provenance, parameter count)


def prepare(spec: RunSpec, device: str) -> Prepared:
    """The task, model, data generator, validation batch and first result fields of a run."""
    task, model = build_seeded(spec, device)
    data = torch.Generator().manual_seed(derived_seed(spec.seed, "data"))
    validation = validation_set(spec.task, spec.task_params, task, spec.train.eval_size)
    result = {
        "run_id": spec.run_id,
        "n_params": model.n_params(),
        "started_at": time.time(),
        **provenance(device),
    }
    result.update(reference_costs(task, validation))
    return Prepared(task, model, data, validation, result)


def reference_costs(task: Task, validation: Batch) -> dict:
    """The run row's costs to measure a model against on its validation set: the task's optimum
    (n-grams: the Bayes-optimal predictor) where it has one, and what predictors that learn
    nothing cost (Task.trivial_costs), as JSON."""
    costs = {}
    optimum = task.optimal_cost(validation)
    if optimum is not None:
        costs["reference_cost_bits"] = float(optimum.mean())
    costs["trivial_json"] = trivial_json(task, validation)
    return costs


def trivial_json(task: Task, validation: Batch) -> str:
    """Task.trivial_costs on the validation set, each a mean in bits per sequence, as JSON."""
    trivial = task.trivial_costs(validation)
    return json.dumps(
        {name: float(cost.float().mean()) for name, cost in trivial.items()}, sort_keys=True
    )


def finish(
    spec: RunSpec,
    task,
    model,
    curves: list,
    converged: int | None,
    wall_s: float,
    result: dict,
    checkpoint_dir: str | Path,
) -> dict:
    """A trained run's result: generalization sweeps, trace and the final validation point. Its
    final weights are kept beside the checkpoints (benchmarks.harness.trained) before the result
    goes back."""
    save_weights(checkpoint_dir, spec.run_id, model, spec.config(), spec.profile)
    evals = generalization(
        model, spec.task, spec.task_params, task, spec.eval, spec.train.eval_size
    )
    last = [c for c in curves if c["split"] == "val"][-1]
    return {
        **result,
        "status": "done",
        "curves": curves,
        "evals": evals,
        "wall_s": wall_s,
        "trace": trace(model, spec.task, spec.task_params, task),
        "converged_step": converged,
        "converged_sequences": None if converged is None else converged * spec.train.batch_size,
        "final_cost_bits": last["cost_bits"],
        "final_bit_errors": last["bit_errors"],
        "error": None,
    }


def diverged(result: dict, error: Diverged, curves: list, wall_s: float) -> dict:
    """A diverged run's result: its curve up to the divergence, no evaluations."""
    return {
        **result,
        "status": "diverged",
        "error": str(error),
        "curves": curves,
        "evals": [],
        "wall_s": wall_s,
    }


class CurveWriter(NamedTuple):
    """A run's live curve output."""

    writer: object | None  # the TensorBoard SummaryWriter to close, or None
    on_point: Callable[[dict], None]  # called with each curve point as it is made


def curve_writer(tensorboard: str | None, spec: RunSpec) -> CurveWriter:
    """Curve points written as TensorBoard scalars against sequences seen, one event folder per
    run; a no-op without a folder."""
    if not tensorboard:
        return CurveWriter(None, lambda point: None)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RuntimeError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from None
    writer = SummaryWriter(
        str(Path(tensorboard) / spec.task / spec.model / f"seed{spec.seed}-{spec.run_id[:8]}"),
        flush_secs=10,
    )

    def write(point: dict) -> None:
        for metric in ("cost_bits", "bit_errors"):
            writer.add_scalar(f"{point['split']}/{metric}", point[metric], point["sequences"])

    return CurveWriter(writer, write)


def execute(
    spec: RunSpec, checkpoint_dir: str | Path, device: str = "cpu", tensorboard: str | None = None
) -> dict:
    """Train and evaluate one run; returns the fields and rows for `Store.finish_run`.
    The checkpoint stays until the driver has stored the result (`checkpoint_path`)."""
    task, model, data, validation, result = prepare(spec, device)
    if spec.train.compile:
        model.compile_step()
    path = checkpoint_path(checkpoint_dir, spec.run_id)
    writer, on_point = curve_writer(tensorboard, spec)
    try:
        # what a model draws from torch's global RNG while it trains (dropout) comes from the
        # run's seed, so a rerun from scratch repeats it (a resumed one does not: the state is
        # not checkpointed; the built-in models draw nothing, their dropout defaults to 0)
        (run,) = seeded(
            derived_seed(spec.seed, "noise"),
            lambda: train(
                OneModel(model, spec.train, data),
                task,
                spec.train,
                validation,
                resume=load_checkpoint(path),
                on_checkpoint=lambda snap: save_checkpoint(path, snap),
                description=f"{spec.model}/{spec.task}/s{spec.seed}",
                on_point=lambda k, point: on_point(point),
            ),
        )
    finally:
        if writer is not None:
            writer.close()
    return seed_result(spec, task, run, result, checkpoint_dir)


def group_checkpoint(checkpoint_dir: str | Path, specs: list[RunSpec]) -> Path:
    """One checkpoint for a batched group, named by its members."""
    digest = hashlib.sha256(",".join(s.run_id for s in specs).encode()).hexdigest()[:16]
    return checkpoint_path(checkpoint_dir, f"group-{digest}")


def execute_group(
    specs: list[RunSpec],
    checkpoint_dir: str | Path,
    device: str = "cpu",
    tensorboard: str | None = None,
) -> list[dict]:
    """Train several seeds of one config as one batched model (benchmarks/harness/batched.py); one
    result per spec, as `execute` would give for each alone (to float rounding)."""
    from ntm_bench.benchmarks.harness.batched import Seeds

    prepared = [prepare(spec, device) for spec in specs]
    # the seeds share the task and its validation set (one config); each has its own model
    task, validation = prepared[0].task, prepared[0].validation
    path = group_checkpoint(checkpoint_dir, specs)
    writers = [curve_writer(tensorboard, spec) for spec in specs]
    seeds = ",".join(str(spec.seed) for spec in specs)  # for the progress bar
    try:
        trained = seeded(  # as in execute, from the group's first seed
            derived_seed(specs[0].seed, "noise"),
            lambda: train(
                Seeds([p.model for p in prepared], specs[0].train, [p.data for p in prepared]),
                task,
                specs[0].train,
                validation,
                resume=load_checkpoint(path),
                on_checkpoint=lambda snap: save_checkpoint(path, snap),
                on_point=lambda k, point: writers[k].on_point(point),
                description=f"{specs[0].model}/{specs[0].task}/s{seeds}",
            ),
        )
    finally:
        for live in writers:
            if live.writer is not None:
                live.writer.close()
    return [
        seed_result(spec, task, run, result, checkpoint_dir)
        for spec, run, result in zip(specs, trained, (p.result for p in prepared))
    ]


def seed_result(spec: RunSpec, task: Task, run: SeedRun, result: dict, checkpoint_dir) -> dict:
    """One trained seed (a run alone, or one seed of a group) as the driver stores it."""
    if run.diverged is not None:
        error = Diverged(run.diverged.step, run.diverged.what)
        return diverged(result, error, run.curves, run.wall_s)
    return finish(
        spec, task, run.model, run.curves, run.converged_step, run.wall_s, result, checkpoint_dir
    )
