"""The task registry: TASKS maps a name (also the module name and the YAML key) to its class."""

from __future__ import annotations

from ntm_bench.tasks.associative_recall import AssociativeRecall
from ntm_bench.tasks.base import Task
from ntm_bench.tasks.copy import Copy
from ntm_bench.tasks.ngrams import NGrams
from ntm_bench.tasks.priority_sort import PrioritySort
from ntm_bench.tasks.repeat_copy import RepeatCopy

TASKS: dict[str, type[Task]] = {
    "copy": Copy,
    "repeat_copy": RepeatCopy,
    "associative_recall": AssociativeRecall,
    "ngrams": NGrams,
    "priority_sort": PrioritySort,
}


def build_task(name: str, **params) -> Task:
    """Instantiate the task registered as `name` with `params`; unknown names list the known
    ones. A plugin is registered by the harness (benchmarks/harness/plugins.py) before it is
    built."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name](**params)


__all__ = ["TASKS", "build_task"]
