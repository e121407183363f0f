"""Curriculum (`train.curriculum`): the task's training maximum along one axis grows with the steps.

    train:
      curriculum: {axis: length, start: 2, every: 500, step: 1}

The batch drawn after s optimizer steps (the batch of step s + 1) comes from the task with its
`max_<axis>` set to

    maximum(s) = min(start + step * (s // every), max_<axis>)

and its sizes uniform in [min_<axis>, maximum(s)], the way the task always draws them. So `start`
holds for the first `every` steps, and the task's own maximum is reached after
ceil((max_<axis> - start) / step) * every steps. Everything else stays the full training
distribution: the fixed validation set, the evaluations, the memory check and the run's
task_params, so the curves of runs with and without a curriculum are on one scale. Derived
encodings fixed at construction (repeat copy's count normalization) stay those of the full task.

maximum(s) is a pure function of the step: a checkpoint needs nothing more, a resumed run draws
what it would have, and every seed of a batched group follows the schedule by its step. "none"
(the default) samples from the task itself, so those runs draw exactly the random numbers they
always have, and RunSpec.config() leaves the key out so their run_ids do not change.

Tasks follow a curriculum through two declared hooks of tasks/base.py: `min_size`/`max_size` (the
training range, which the planner checks `start` against) and `capped(axis, maximum)`, by default
a shallow copy with `max_<axis>` set, which the built-in tasks' `sample` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ntm_bench.benchmarks.harness.values import ValueProblem, number
from ntm_bench.tasks.base import Task

NONE = "none"
KEYS = ("axis", "start", "every", "step")


@dataclass(frozen=True)
class Curriculum:
    """A validated schedule: the maximum of `axis` starts at `start` and grows by `step` every
    `every` optimizer steps, up to the task's own maximum."""

    axis: str
    start: int
    every: int
    step: int = 1

    def maximum(self, steps_done: int, task_max: int) -> int:
        """The maximum of `axis` for the batch drawn after `steps_done` optimizer steps."""
        return min(self.start + self.step * (steps_done // self.every), task_max)


def read(value, where: str = "train.curriculum") -> Curriculum | str:
    """ "none" or a Curriculum from a profile value; raises ValueError naming `where`.key."""
    if isinstance(value, Curriculum) or value == NONE:
        return value
    if not isinstance(value, dict):
        raise ValueError(
            f'{where} must be "none" or a mapping {{axis: length, start: 2, every: 500, step: 1}}, '
            f"got {value!r}"
        )
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    missing = [key for key in KEYS[:3] if key not in value]
    if missing:
        raise ValueError(
            f"{where}: missing key {missing[0]!r} (axis, start and every are required; "
            f"step defaults to 1)"
        )
    if not isinstance(value["axis"], str) or not value["axis"]:
        raise ValueError(
            f"{where}.axis must be the name of a task axis, e.g. length, got {value['axis']!r}"
        )
    counts = {}
    for key in KEYS[1:]:
        try:
            counts[key] = number(value.get(key, 1), want_int=True)
        except ValueProblem as problem:
            raise ValueError(f"{where}.{key}: {problem}") from None
        if counts[key] < 1:
            raise ValueError(f"{where}.{key} must be a positive integer, got {counts[key]!r}")
    return Curriculum(value["axis"], **counts)


def check_task(curriculum: Curriculum | str, task: Task) -> None:
    """Raise ValueError unless `task` can follow `curriculum`: the axis is one of its axes with a
    training range (min_size, max_size), and start lies in it (below the minimum no size can be
    drawn; above the maximum the curriculum would never act)."""
    if curriculum == NONE:
        return
    axis = curriculum.axis
    if axis not in task.axes:
        raise ValueError(
            f"train.curriculum.axis: {type(task).__name__} has no axis {axis!r} "
            f"(known: {', '.join(task.axes) or 'none'})"
        )
    low, high = task.min_size(axis), task.max_size(axis)
    if low is None or high is None:
        raise ValueError(
            f"train.curriculum.axis: {type(task).__name__} has no training range "
            f"min_{axis}..max_{axis} to schedule"
        )
    if not low <= curriculum.start <= high:
        raise ValueError(
            f"train.curriculum.start {curriculum.start} must lie in the task's training range "
            f"min_{axis}..max_{axis} = {low}..{high}"
        )


def scheduled(task: Task, curriculum: Curriculum | str) -> Callable[[int], Task]:
    """steps done -> the task to draw the next training batch from. Without a curriculum it is
    `task` itself; with one, `task.capped(axis, maximum)` (one per maximum, kept), so the task's
    sample draws the same kinds of random numbers it always does."""
    if curriculum == NONE:
        return lambda steps_done: task
    full = task.max_size(curriculum.axis)
    views: dict[int, Task] = {}

    def at(steps_done: int) -> Task:
        maximum = curriculum.maximum(steps_done, full)
        if maximum not in views:
            views[maximum] = task.capped(curriculum.axis, maximum)
        return views[maximum]

    return at
