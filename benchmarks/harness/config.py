"""Profiles: YAML files with four sections, loaded into frozen dataclasses.

    seeds:  [1, 2, 3]
    train:  {steps: 2000, batch_size: 16, optimizer: adam, lr: 1.0e-3, ...}   (TrainConfig)
    models: {ntm: {controller_size: 100, ..., train: {lr: 1.0e-4},
                   per_task: {copy: {memory_size: 64, train: {...}}}}}
    tasks:  {copy: {max_length: 20, eval: {length: [10, 20, 30]}, train: {eval_size: 1000}}}

Model and task parameters are checked against the constructor of the registered class, train
keys against TrainConfig, so a typo is an error naming the key and the file. `--set a.b.c=value`
overrides any key before that check (the value is parsed as YAML: `--set train.lr=1e-4`). Reading
the file and applying the overrides is benchmarks/harness/profile_file.py's.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ntm_bench.benchmarks.harness import constructors, plugins
from ntm_bench.benchmarks.harness.curriculum import Curriculum, read as read_curriculum
from ntm_bench.benchmarks.harness.profile_file import (
    SECTIONS,
    ProfileFileError,
    apply_override,
    shadowing,
    read_yaml,
)
from ntm_bench.benchmarks.harness.values import MAX_INT, coerce_keys

PROFILE_DIR = Path(__file__).parents[1] / "profiles"
# Caps on the data a run holds, beyond which a value is a typo: they fail here, in one line,
# instead of as an allocation failure inside a worker after the store has its rows.
MAX_BATCH = 65536  # train.batch_size
MAX_EVAL_SIZE = 1_000_000  # train.eval_size


def section(raw: dict, key: str, where: str) -> dict:
    """The mapping `raw[key]`: {} where it is missing or left empty (`train:`), else an error
    naming `where` + key for anything but a mapping (`train: false`, `models: [ntm]`); `where`
    is the file and the enclosing keys, "p.yaml: " or "p.yaml: models.ntm."."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


class ConfigError(ValueError):
    """A problem with a profile or an override; the message names the file and the key."""


@dataclass(frozen=True)
class TrainConfig:
    """How one run trains. Every knob is recorded in the run's config and so in its run_id."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 16  # sequences per step
    optimizer: str = "adam"  # "adam" (Collier & Beel) or "rmsprop" (the paper)
    lr: float = 1e-3
    momentum: float = 0.9  # rmsprop only (Graves 2013 form: centered, decay 0.95)
    clip: float = 50.0  # adam: gradient-norm clip; rmsprop: element-wise value clip
    eval_interval: int = 100  # steps between validation points
    eval_size: int = 256  # sequences in the fixed validation set
    log_interval: int = 10  # steps averaged into one training-curve point
    checkpoint_interval: int = 200  # steps between checkpoints (resume after a crash)
    stop_on_converge: bool = False  # end the run at its first converged validation point
    batch_seeds: bool = True  # train the seeds of one config as one batched model
    # (benchmarks/harness/batched.py; models with supports_vmap). Pays
    # at small batches (8 NTM seeds at batch 1: 1.7x one seed's
    # time); at batch 16 with compile, 8 seeds took 9.9x, more
    # than apart: turn it off there (as solve_copy.yaml does)
    compile: bool = False  # torch.compile the model's time step, 8 steps per compiled
    # call (SequenceModel.compile_step; ~1.5 min warm-up on a
    # 2-core CPU, then 4-6x faster NTM steps; results equal
    # eager ones to float rounding, not bit for bit)
    curriculum: str | Curriculum = (
        "none"  # "none", or {axis: length, start: 2, every: 500, step: 1}:
    )
    # the task's max_<axis> starts at `start`, grows by `step` every
    # `every` steps up to the task's own, and batches draw sizes in
    # [min_<axis>, that]; validation keeps the full task so curves
    # compare (benchmarks/harness/curriculum.py). Left out of the run config
    # when "none", so the run_ids of runs without one stand

    def __post_init__(self):
        for name in (
            "steps",
            "batch_size",
            "eval_interval",
            "eval_size",
            "log_interval",
            "checkpoint_interval",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(
                    f"train.{name} must be a positive integer, got {getattr(self, name)!r}"
                )
        for name, cap in (("batch_size", MAX_BATCH), ("eval_size", MAX_EVAL_SIZE)):
            if getattr(self, name) > cap:
                raise ConfigError(f"train.{name} is at most {cap}, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum must be in [0, 1), got {self.momentum!r}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ConfigError(f"train.optimizer must be adam or rmsprop, got {self.optimizer!r}")
        if not self.lr > 0 or not self.clip > 0:
            raise ConfigError(
                f"train.lr and train.clip must be positive, got {self.lr!r}, {self.clip!r}"
            )
        # a mapping becomes a (frozen, hashable) Curriculum; its check against the task is the
        # planner's
        try:
            object.__setattr__(self, "curriculum", read_curriculum(self.curriculum))
        except ValueError as error:
            raise ConfigError(str(error)) from None


@dataclass(frozen=True)
class Profile:
    """A loaded, validated profile. `models` and `tasks` keep their raw (validated) dicts."""

    name: str
    path: str
    seeds: tuple[int, ...]
    train: TrainConfig
    models: dict = field(default_factory=dict)
    tasks: dict = field(default_factory=dict)
    # the learning-rate sweep (benchmarks/harness/sweep.py), if declared
    sweep: "Sweep | None" = None
    # per --set override that some runs do not take, the more specific keys they take instead
    # (profile_file.shadowing): the command line says so rather than train them silently
    shadowed: dict = field(default_factory=dict)


class Sweep(NamedTuple):
    """A profile's learning-rate sweep (benchmarks/harness/sweep.py has the rule)."""

    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    fraction: float


def read_sweep(raw, where: str) -> Sweep | None:
    """The profile's `sweep` section, checked (None where the profile has none)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with rates, seeds and fraction")
    unknown = sorted(set(raw) - set(Sweep._fields))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: rates, seeds, fraction)")
    rates = raw.get("rates")
    if (
        not isinstance(rates, list)
        or len(rates) < 3
        or not all(type(r) in (int, float) and math.isfinite(r) and r > 0 for r in rates)
        or len(set(rates)) != len(rates)
    ):
        raise ConfigError(f"{where}.rates: expected at least three distinct positive rates")
    if max(rates) < 10 * min(rates) * (1 - 1e-9):
        raise ConfigError(
            f"{where}.rates: they must span at least 10x, got {min(rates)}-{max(rates)}"
        )
    seeds = raw.get("seeds")
    check_seeds(seeds, f"{where}.seeds")
    if len(set(seeds)) < 2:
        raise ConfigError(f"{where}.seeds: at least two seeds, got {seeds}")
    fraction = raw.get("fraction")
    if type(fraction) not in (int, float) or not 0 < fraction <= 1:
        raise ConfigError(f"{where}.fraction: expected a number in (0, 1], got {fraction!r}")
    return Sweep(tuple(float(r) for r in sorted(rates)), tuple(seeds), float(fraction))


def resolve_path(name_or_path: str) -> Path:
    """A profile name in benchmarks/profiles/ or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        raise ConfigError(f"profile {name_or_path} is a folder, expected a YAML file")
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not candidate.is_file():
            raise ConfigError(f"profile file {name_or_path} does not exist")
        return candidate
    path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ConfigError(
            f"unknown profile {name_or_path!r} (known: {known}; or give a path to a .yaml file)"
        )
    return path


def check_keys(params: dict, cls, where: str, extra: tuple[str, ...] = ()) -> None:
    """Raise ConfigError if `params` has a key that `cls`'s constructor does not accept."""
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(params).__name__}")
    accepted = set(constructors.keywords(cls))
    unknown = sorted(set(params) - accepted - set(extra))
    if unknown:
        known = ", ".join(sorted(accepted | set(extra)))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {known})")


def read_params(params: dict, cls, where: str) -> dict:
    """A model's or task's parameters with each value read as its constructor declares it
    (benchmarks.harness.values: `1e-4` a number where a float belongs, `abc` an error naming the
    key); the `per_task` mapping is copied so that the caller can replace its entries."""
    params = coerce_keys(params, constructors.annotations(cls), where, ConfigError)
    if isinstance(params.get("per_task"), dict):
        params["per_task"] = dict(params["per_task"])
    return params


def check_seeds(seeds, where: str) -> None:
    """Raise ConfigError unless `seeds` is a non-empty list of non-negative integers."""
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(type(s) is int and 0 <= s <= MAX_INT for s in seeds)
    ):
        raise ConfigError(
            f"{where} must be a non-empty list of integers in [0, {MAX_INT}], got {seeds!r}"
        )


def check_eval(block, axes: tuple[str, ...], where: str) -> None:
    """An eval block: {axis: [values]} and optionally `joint: [{axis: value, ...}]`, points that
    set several axes at once (the paper's repeat-copy tests: length 20 with 10 repeats)."""
    if not isinstance(block, dict):
        raise ConfigError(
            f"{where}: expected a mapping of axis: [values], got {type(block).__name__}"
        )
    for axis, values in block.items():
        if axis == "joint":
            if not isinstance(values, list) or not all(
                isinstance(p, dict) and len(p) >= 2 for p in values
            ):
                raise ConfigError(
                    f"{where}.joint: expected a list of mappings of two or more axes to a value, "
                    f"e.g. [{{length: 20, repeats: 10}}], got {values!r}"
                )
            for point in values:
                for name, value in point.items():
                    check_axis(name, [value], axes, f"{where}.joint")
            continue
        check_axis(axis, values, axes, f"{where}.{axis}")


def check_axis(axis, values, axes: tuple[str, ...], where: str) -> None:
    if axis not in axes:
        raise ConfigError(
            f"{where}: unknown axis {axis!r} (known: {', '.join(axes) or 'none'}, joint)"
        )
    if (
        not isinstance(values, list)
        or not values
        or not all(type(v) is int and v >= 1 for v in values)
    ):
        raise ConfigError(
            f"{where}: {axis} values must be a non-empty list of positive integers, got {values!r}"
        )


def make_train(raw: dict, where: str) -> TrainConfig:
    """TrainConfig from a dict, with unknown keys reported against `where`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})"
        )
    raw = (
        coerce_keys(raw, constructors.annotations(TrainConfig), where, ConfigError) if raw else raw
    )
    try:
        return TrainConfig(**raw)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def load_profile(name_or_path: str, overrides: list[str] = ()) -> Profile:
    """Read, override and validate a profile; raises ConfigError naming the file and key."""

    path = resolve_path(name_or_path)
    try:
        raw = read_yaml(path)
        for assignment in overrides:
            apply_override(raw, assignment)
    except ProfileFileError as error:
        raise ConfigError(str(error)) from None
    shadowed = {a: found for a in overrides if (found := shadowing(raw, a))}
    # A bad value may come from the command line and not the file: the errors name both, so
    # that nobody searches a file that is fine for the key an override broke.
    source = f"{path} with --set {' '.join(overrides)}" if overrides else str(path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})"
        )

    seeds = raw.get("seeds", [0])
    check_seeds(seeds, f"{source}: seeds")
    models, tasks = (
        dict(section(raw, "models", f"{source}: ")),
        dict(section(raw, "tasks", f"{source}: ")),
    )
    # plugins named in the profile (module:Class keys) and installed entry points join the
    # registries
    try:
        plugins.ensure("models", models)
        plugins.ensure("tasks", tasks)
    except plugins.PluginError as error:
        raise ConfigError(f"{source}: {error}") from None
    train = make_train(section(raw, "train", f"{source}: "), f"{source}: train")
    read_models(models, source)
    read_tasks(tasks, source)
    sweep = read_sweep(raw.get("sweep"), f"{source}: sweep")
    return Profile(path.stem, str(path), tuple(seeds), train, models, tasks, sweep, shadowed)


def read_models(models: dict, source: str) -> None:
    """Check the profile's `models` section model by model and read its values in place
    (read_params): its keys, seeds, train overrides and per-task parameters."""
    from ntm_bench.models import MODELS
    from ntm_bench.tasks import TASKS

    for name, params in models.items():
        if name not in MODELS:
            raise ConfigError(
                f"{source}: models: unknown model {name!r} (known: {', '.join(MODELS)})"
            )
        check_keys(
            params or {},
            MODELS[name],
            f"{source}: models.{name}",
            extra=("train", "per_task", "seeds"),
        )
        params = models[name] = read_params(params or {}, MODELS[name], f"{source}: models.{name}")
        check_seeds(params.get("seeds", [0]), f"{source}: models.{name}.seeds")
        make_train(
            section(params, "train", f"{source}: models.{name}."), f"{source}: models.{name}.train"
        )
        per_task = section(params, "per_task", f"{source}: models.{name}.")
        for task, task_params in per_task.items():
            if task not in TASKS:
                raise ConfigError(
                    f"{source}: models.{name}.per_task: unknown task {task!r} (known: "
                    f"{', '.join(TASKS)})"
                )
            where = f"{source}: models.{name}.per_task.{task}"
            check_keys(task_params or {}, MODELS[name], where, extra=("train",))
            params["per_task"][task] = read_params(task_params or {}, MODELS[name], where)
            make_train(section(task_params or {}, "train", f"{where}."), f"{where}.train")


def read_tasks(tasks: dict, source: str) -> None:
    """Check the profile's `tasks` section task by task and read its values in place: its keys,
    train overrides and evaluation points."""
    from ntm_bench.tasks import TASKS

    for name, params in tasks.items():
        if name not in TASKS:
            raise ConfigError(f"{source}: tasks: unknown task {name!r} (known: {', '.join(TASKS)})")
        check_keys(params or {}, TASKS[name], f"{source}: tasks.{name}", extra=("eval", "train"))
        params = tasks[name] = read_params(params or {}, TASKS[name], f"{source}: tasks.{name}")
        make_train(
            section(params, "train", f"{source}: tasks.{name}."), f"{source}: tasks.{name}.train"
        )
        check_eval(
            section(params, "eval", f"{source}: tasks.{name}."),
            TASKS[name].axes,
            f"{source}: tasks.{name}.eval",
        )
