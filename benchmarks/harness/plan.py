"""The plan: one RunSpec per (model, task, seed), each with a run_id from its resolved config.

Resolution order for a (model, task) pair, later wins:
    constructor defaults < models.<m> < models.<m>.per_task.<t>        (model params)
    profile train < tasks.<t>.train < models.<m>.train < models.<m>.per_task.<t>.train   (training)
The run_id hashes everything that can change a number: model and task with all their resolved
parameters (defaults included, so changing a default is a new run; a model's `later_params`, added
after runs were published, only where they differ from their default), the evaluation sweeps, the
training config, the seed and FORMAT_VERSION. The profile's name is not part of it: the same run
reached from two profiles is the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from ntm_bench.benchmarks.harness import constructors, curriculum, plugins
from ntm_bench.benchmarks.harness.config import ConfigError, Profile, TrainConfig, make_train
from ntm_bench.benchmarks.harness.contract import check_data, check_model, check_task
from ntm_bench.benchmarks.harness.evaluate import eval_points
from ntm_bench.benchmarks.harness.values import MAX_INT

# Bump when a change to the code changes results for an unchanged config.
# 2: evals keyed by point (joint points, per-channel scores, memory marks); RMSProp in Graves form.
FORMAT_VERSION = 2
# A model (parameters and buffers) larger than this is a typo on a 24 GiB machine.
MAX_MODEL_BYTES = 4 * 2**30


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to train and evaluate one run, independent of the process running it."""

    model: str
    model_params: dict
    task: str
    task_params: dict
    eval: dict
    train: TrainConfig
    seed: int
    profile: str
    # {"model"/"task": "dist==version"} of plugin classes
    plugins: dict = field(default_factory=dict)

    def config(self) -> dict:
        """The fully resolved config: what run_id hashes and the store keeps as config_json
        (with the plugins' distributions and versions when the model or task is one)."""
        plugins = {"plugins": self.plugins} if self.plugins else {}
        return {
            **plugins,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "model_params": self.model_params,
            "task": self.task,
            "task_params": self.task_params,
            "eval": self.eval,
            "train": train_config(self.train),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict, profile: str) -> "RunSpec":
        """The RunSpec whose config() is `config` (a stored run's config_json, parsed)."""
        if config.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"run config has format version {config.get('format_version')}, this code "
                f"{FORMAT_VERSION}: its numbers came from other code"
            )
        return cls(
            config["model"],
            config["model_params"],
            config["task"],
            config["task_params"],
            config["eval"],
            make_train(config["train"], "run config: train"),
            config["seed"],
            profile,
            config.get("plugins", {}),
        )

    @property
    def run_id(self) -> str:
        text = json.dumps(self.config(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_config(train: TrainConfig) -> dict:
    """The training config as the run config records it. A curriculum of "none" is left out, so
    runs without one keep the run_ids they had before the option existed."""
    config = dataclasses.asdict(train)
    if config["curriculum"] == curriculum.NONE:
        del config["curriculum"]
    return config


def resolve(profile: Profile, model: str, task: str, seed: int) -> RunSpec:
    """The RunSpec of one (model, task, seed) under `profile`."""
    from ntm_bench.models import MODELS
    from ntm_bench.tasks import TASKS

    model_raw = dict(profile.models.get(model) or {})
    model_raw.pop("seeds", None)  # which seeds to plan, not a parameter (see model_seeds)
    per_task = dict((model_raw.pop("per_task", None) or {}).get(task) or {})
    train = dict(model_raw.pop("train", None) or {})
    train.update(per_task.pop("train", None) or {})
    defaults = constructors.defaults(MODELS[model])
    model_params = {**defaults, **model_raw, **per_task}
    for name in MODELS[model].later_params:
        if name in model_params and model_params[name] == defaults.get(name):
            del model_params[name]  # runs from before it existed keep their run_ids

    task_raw = dict(profile.tasks.get(task) or {})
    task_train = task_raw.pop("train", None) or {}
    evaluation = {
        axis: [dict(p) if isinstance(p, dict) else p for p in values]
        for axis, values in (task_raw.pop("eval", None) or {}).items()
    }
    task_params = constructors.defaults(TASKS[task])
    task_params.update(task_raw)

    merged = dataclasses.asdict(profile.train)
    merged.update(task_train)
    merged.update(train)
    return RunSpec(
        model,
        model_params,
        task,
        task_params,
        evaluation,
        make_train(merged, f"{profile.path}: models.{model} train for {task}"),
        seed,
        profile.name,
        plugins.sources(model, task),
    )


def parse_names(text: str, known, kind: str, default=None) -> list[str]:
    """Split a comma list of names; 'all' means `default` (or every known name)."""
    if text.strip() == "all":
        return list(default if default is not None else known)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"no {kind} given (known: {', '.join(known)})")
    try:
        plugins.ensure(f"{kind}s", names)
    except plugins.PluginError as error:
        raise ConfigError(str(error)) from None
    known = list(plugins.registry(f"{kind}s")) if kind in ("model", "task") else known
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown {kind} {name!r} (known: {', '.join(known)})")
    return names


def parse_seeds(text: str | None) -> list[int] | None:
    """A --seeds comma list as integers (None: the profile's seeds)."""
    if text is None:
        return None
    parts = [s.strip() for s in text.split(",") if s.strip()]
    # ASCII digits only: int() also reads "1_0" as 10 and fullwidth digits, which are typos here
    if not all(re.fullmatch(r"-?[0-9]+", s) for s in parts):
        raise ConfigError(f"--seeds must be a comma list of integers, got {text!r}")
    seeds = [int(s) for s in parts]
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_INT:
        raise ConfigError(f"--seeds must be integers in [0, {MAX_INT}], got {text!r}")
    return seeds


def plan_runs(
    profile: Profile, models: list[str], tasks: list[str], seeds: list[int] | None = None
) -> list[RunSpec]:
    """All (model, task, seed) runs, ordered by task, model, seed; constructing each model and
    task once here so an impossible parameter is reported before anything trains."""
    from ntm_bench.benchmarks.harness.plugins import build_model, build_task

    specs = []
    for task in tasks:
        for model in models:
            pair = [
                resolve(profile, model, task, seed)
                for seed in (seeds if seeds is not None else model_seeds(profile, model))
            ]
            if pair:  # the seeds share everything check_buildable reads
                check_buildable(pair[0], build_task, build_model)
            specs += pair
    return specs


def model_seeds(profile: Profile, model: str) -> tuple[int, ...]:
    """The seeds planned for `model`: its own `models.<m>.seeds` if the profile gives them (the
    replicate profile trains 3 DNC seeds beside 5 of the others), else the profile's."""
    return tuple((profile.models.get(model) or {}).get("seeds") or profile.seeds)


def check_buildable(spec: RunSpec, build_task, build_model) -> None:
    """Construct the task and the model once and run them on one small batch
    (benchmarks/harness/contract.py), turning whatever they raise into a ConfigError naming the
    pair."""
    where = f"{spec.profile}: {spec.model} on {spec.task}"
    task, probe = built_task(spec, build_task, where)
    model = built_model(spec, task, build_model, where)
    needed, available = task.memory_needed(), model.memory_size
    if needed is not None and available is not None and available < needed:
        raise ConfigError(
            f"{where}: memory_size {available} is smaller than the {needed} vectors the task "
            f"must store at its largest training size"
        )
    try:
        check_model(model, probe, spec.train.compile)
    except Exception as error:
        raise ConfigError(f"{where}: model {spec.model!r}: {described(error)}") from None
    points = list(eval_points(spec.eval))
    try:
        for sizes in points:
            task.check_size(sizes)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: eval: {error}") from None
    try:
        check_data(task, spec.train.batch_size, spec.train.eval_size, points)
    except Exception as error:
        raise ConfigError(f"{where}: {described(error)}") from None
    try:
        curriculum.check_task(spec.train.curriculum, task)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


class BuiltTask(NamedTuple):
    """A planned run's task, built once by the planner."""

    task: object  # a tasks.base.Task
    probe: (
        object  # the tasks.base.Batch its contract check sampled (benchmarks/harness/contract.py)
    )


def built_task(spec: RunSpec, build_task, where: str) -> BuiltTask:
    """The spec's task and its contract probe batch; ConfigError naming `where` if the task
    cannot be built, cannot sample at the top of its training range, or breaks the contract."""
    try:
        task = build_task(spec.task, **spec.task_params)
    except Exception as error:  # a plugin's own checks may raise anything: one line, not a trace
        raise ConfigError(f"{where}: task parameters: {described(error)}") from None
    try:  # the training range's top: sampling there must not be what fails
        task.check_size({axis: task.max_size(axis) for axis in task.axes})
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: task parameters: {error}") from None
    try:
        return BuiltTask(task, check_task(task))
    except Exception as error:
        raise ConfigError(f"{where}: task {spec.task!r}: {described(error)}") from None


def built_model(spec: RunSpec, task, build_model, where: str):
    """The spec's model for `task`, after its size is counted without storage (an absurd
    memory_size must not allocate); ConfigError naming `where` past MAX_MODEL_BYTES or on any
    error its constructor raises."""
    try:
        with torch.device("meta"):
            sizes = build_model(spec.model, task.input_size, task.output_size, **spec.model_params)
        size = sum(t.numel() * t.element_size() for t in (*sizes.parameters(), *sizes.buffers()))
        if size > MAX_MODEL_BYTES:
            raise ValueError(  # named with `where` by the except below
                f"the model would hold {size / 2**30:.1f} GiB of parameters "
                f"and buffers (at most {MAX_MODEL_BYTES / 2**30:g} GiB)"
            )
        return build_model(spec.model, task.input_size, task.output_size, **spec.model_params)
    except Exception as error:
        raise ConfigError(f"{where}: model parameters: {described(error)}") from None


def described(error: Exception) -> str:
    """One line for an error raised by a model's or task's own code: the contract's and the
    parameter checks' messages as they are, anything else with its type (an AssertionError's
    message alone would not say what failed)."""
    text = " ".join(str(error).split())
    if isinstance(error, (ValueError, TypeError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def group_units(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Units of work: the seeds of one config are one unit (trained as one batched model) when
    `train.batch_seeds` is on and the model supports it; every other run is a unit of its own."""
    from ntm_bench.models import MODELS

    groups: dict[str, list[RunSpec]] = {}
    units = []
    for spec in specs:
        if spec.train.batch_seeds and MODELS[spec.model].supports_vmap:
            key = json.dumps({**spec.config(), "seed": None}, sort_keys=True)
            if key not in groups:
                groups[key] = []
                units.append(groups[key])
            groups[key].append(spec)
        else:
            units.append([spec])
    return units
