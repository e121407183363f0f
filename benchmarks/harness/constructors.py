"""What a model's or task's constructor accepts: the one walk over `__init__` signatures that the
profile checks (unknown keys), the planner (defaults resolved into every run's config, so a
changed default is a new run_id), value reading (declared types) and the speed suite use.

A subclass that forwards `**params` to its parent (NTMFeedForward -> NTM) accepts the parent's
keywords too; the walk follows the MRO until a constructor without `**params`. The sizes that
come from the task (`input_size`, `output_size`) are never profile keys.
"""

from __future__ import annotations

import inspect
import typing

FROM_TASK = {"self", "input_size", "output_size"}
KEYWORDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def constructors(cls) -> list:
    """The `__init__` functions a call of `cls(...)` reaches with profile keywords, subclass
    first."""
    found = []
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        found.append(vars(klass)["__init__"])
        if not any(
            p.kind is p.VAR_KEYWORD for p in inspect.signature(found[-1]).parameters.values()
        ):
            break
    return found


def keywords(cls) -> dict[str, inspect.Parameter]:
    """{name: Parameter} of every profile keyword `cls` accepts (a subclass's default wins)."""
    params: dict[str, inspect.Parameter] = {}
    for init in constructors(cls):
        for p in inspect.signature(init).parameters.values():
            if p.kind in KEYWORDS and p.name not in FROM_TASK:
                params.setdefault(p.name, p)
    return params


def defaults(cls) -> dict:
    """{name: default} of the keywords that have one."""
    return {
        name: p.default
        for name, p in keywords(cls).items()
        if p.default is not inspect.Parameter.empty
    }


def annotations(cls) -> dict:
    """{name: type} of the keywords with a resolvable annotation (a subclass's wins) or, without
    one, a default of a plain type (bool, int, float, str)."""
    hints: dict = {}
    for init in constructors(cls):
        try:
            resolved = typing.get_type_hints(init)
        except (
            NameError,
            TypeError,
        ):  # an annotation that cannot be resolved: those stay unchecked
            continue
        for name, kind in resolved.items():
            if name not in FROM_TASK and name != "return":
                hints.setdefault(name, kind)
    # Without an annotation a keyword is read as its default's type: `hidden=8` takes integers
    # only, as `hidden: int = 8` would, so `hidden: abc` in a profile is an error, not a string
    # handed to the model.
    for name, p in keywords(cls).items():
        if name not in hints and type(p.default) in (bool, int, float, str):
            hints[name] = type(p.default)
    return hints
