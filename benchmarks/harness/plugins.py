"""Models and tasks from outside the package, used by name like the built-in ones.

Two routes:
- a `module:attribute` path as the name: `--models mypkg.models:GRU`, or that key in a profile's
  `models:` section (the full path is the name everywhere: store, report, run_id); the module is
  imported from the working directory too, if it is not installed;
- an installed package's entry points in the groups `ntm_bench.models` and `ntm_bench.tasks`
  (in its pyproject.toml: `[project.entry-points."ntm_bench.models"] gru = "mypkg.models:GRU"`),
  which add their names to MODELS and TASKS.

A plugin is checked against the declared contract when it loads (a model subclasses
models.base.SequenceModel and overrides forward; a task subclasses tasks.base.Task, names its
axes and overrides sample); one that does not fit raises PluginError, which the command line
prints as one line with exit code 2. The plugin's distribution name and version (or, for a
module that is not installed, its source file's digest) go into each run's config
(`RunSpec.config()["plugins"]`), so into its run_id: a new version, or an edit, is a new run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as metadata
import os
import sys
from pathlib import Path

GROUPS = {"models": "ntm_bench.models", "tasks": "ntm_bench.tasks"}
SOURCES: dict[
    tuple[str, str], str
] = {}  # (kind, name) -> "distribution==version" of a loaded plugin


class PluginError(ValueError):
    """A plugin that cannot be imported or does not fit the contract; the message says what is
    missing."""


def registry(kind: str) -> dict:
    if kind == "models":
        from ntm_bench.models import MODELS

        return MODELS
    from ntm_bench.tasks import TASKS

    return TASKS


def check(kind: str, name: str, cls) -> None:
    """Raise PluginError unless `cls` fits the contract of `kind`."""
    from ntm_bench.models.base import SequenceModel
    from ntm_bench.tasks.base import Task

    base = SequenceModel if kind == "models" else Task
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise PluginError(
            f"plugin {name!r} is not a {base.__module__}.{base.__name__} subclass "
            f"(got {type(cls).__name__} {cls!r})"
        )
    # forward and sample are the contract's abstract parts: the base classes' own raise.
    missing = ["forward"] if kind == "models" and cls.forward is SequenceModel.forward else []
    missing += ["sample"] if kind == "tasks" and cls.sample is Task.sample else []
    if kind == "tasks" and not cls.axes:
        missing.append("axes (the generalization axes sample accepts)")
    if missing:
        raise PluginError(
            f"plugin {name!r} ({cls.__module__}.{cls.__name__}) does not define "
            f"{', '.join(missing)}"
        )


def distribution(module: str) -> str:
    """'name==version' of the installed distribution that provides `module`; for a plugin
    imported from the path, not installed, its module file's digest instead: there is no version
    to bump, and an edit must be a new run, not a finished one found again under the old run_id."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top) or []
    if names:
        return f"{names[0]}=={metadata.version(names[0])}"
    path = getattr(importlib.import_module(module), "__file__", None)
    if not path:
        return f"{top} (not installed, no source file)"
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return f"{top} (not installed, source sha256:{digest})"


def add(kind: str, name: str, cls, source: str) -> None:
    check(kind, name, cls)
    registry(kind)[name] = cls
    SOURCES[(kind, name)] = source


def importable_here() -> None:
    """Let a plugin module in the working directory be imported, as `python -m` would, whether
    the suite runs as `ntm-bench` (whose sys.path holds its bin folder) or as `python
    run_suite.py` from elsewhere (the repository's). Appended, not prepended: an installed module
    of the same name wins. Worker processes inherit sys.path."""
    here = os.getcwd()
    if here not in sys.path:
        sys.path.append(here)


def load_path(kind: str, name: str):
    """Import the `module:attribute` plugin `name` and register it under that name."""
    module, _, attribute = name.partition(":")
    importable_here()
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except ImportError as error:
        raise PluginError(f"plugin {name!r}: cannot import {module} ({error})") from None
    except AttributeError:
        raise PluginError(
            f"plugin {name!r}: module {module} has no attribute {attribute!r}"
        ) from None
    add(kind, name, cls, distribution(module))
    return cls


def load_entry_points() -> None:
    """Register every installed package's entry points (idempotent); a broken one is an error."""
    for kind, group in GROUPS.items():
        for point in metadata.entry_points(group=group):
            if point.name in registry(kind):
                continue
            try:
                cls = point.load()
            except (ImportError, AttributeError) as error:
                raise PluginError(
                    f"entry point {point.name!r} in {group} ({point.value}) cannot load: {error}"
                ) from None
            source = f"{point.dist.name}=={point.dist.version}" if point.dist else point.value
            add(kind, point.name, cls, source)


def lookup(kind: str, name: str):
    """The class registered as `name`, loading it as a plugin if it is one; KeyError otherwise."""
    known = registry(kind)
    if name not in known:
        if ":" in name:
            return load_path(kind, name)
        load_entry_points()
    return known[name]


def build_model(name: str, input_size: int, output_size: int, **params):
    """models.build_model for a built-in model or a plugin, loaded on first use (a worker process
    meets a plugin by name, without the profile that registered it in its parent)."""
    from ntm_bench.models import build_model

    registered("models", name)
    return build_model(name, input_size, output_size, **params)


def build_task(name: str, **params):
    """tasks.build_task for a built-in task or a plugin, loaded on first use."""
    from ntm_bench.tasks import build_task

    registered("tasks", name)
    return build_task(name, **params)


def registered(kind: str, name: str) -> None:
    """Register the plugin `name` if it is one and not registered yet; an unknown name is left
    for the registry's own KeyError, which lists the known names."""
    try:
        lookup(kind, name)
    except KeyError:
        pass


def ensure(kind: str, names) -> None:
    """Load the plugins among `names` (and every entry point) before they are checked by name."""
    load_entry_points()
    for name in names:
        if ":" in str(name) and name not in registry(kind):
            load_path(kind, name)


def sources(model: str, task: str) -> dict:
    """{'model': 'dist==version', 'task': ...} for the plugins among (model, task); {} for
    built-ins."""
    found = {"model": SOURCES.get(("models", model)), "task": SOURCES.get(("tasks", task))}
    return {k: v for k, v in found.items() if v}
