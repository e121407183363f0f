"""How a profile's values are read: each value is checked against the type its key declares (the
TrainConfig field, or the model's or task's constructor annotation) before anything runs.

Numbers are read the way people write them. YAML 1.1 (PyYAML) reads `1e-4` and `3E-5` as strings,
since its floats need a dot, so where a key expects a number a string that Python's float() or
int() reads is that number: `1e-4`, `3E-5`, `1_000`, `1.0e-3`. `abc` there is an error naming the
key. Booleans are never numbers (YAML's `yes` is a bool, and True is an int to Python), integers
must be whole, floats finite, and every integer at most MAX_INT: the store keeps integers in
SQLite's 64 bits, and no knob of this suite is sensibly larger.
"""

from __future__ import annotations

import math
import types
import typing

MAX_INT = 2**31 - 1


class ValueProblem(ValueError):
    """A value that does not fit its key's declared type; the message says what was expected."""


def number(value, want_int: bool):
    """`value` as an int (want_int) or a float, or raise ValueProblem."""
    if isinstance(value, bool):
        raise ValueProblem(f"expected {'an integer' if want_int else 'a number'}, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                int(text)
                if want_int and text.lstrip("+-").replace("_", "").isdigit()
                else float(text)
            )
        except ValueError:
            raise ValueProblem(
                f"expected {'an integer' if want_int else 'a number'}, got {value!r}"
            ) from None
    if not isinstance(value, (int, float)):
        raise ValueProblem(
            f"expected {'an integer' if want_int else 'a number'}, got {type(value).__name__} "
            f"{value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueProblem(f"expected a finite number, got {value!r}")
    if want_int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueProblem(f"expected an integer, got {value!r}")
        value = int(value)
        if abs(value) > MAX_INT:
            raise ValueProblem(f"{value} is too large (at most {MAX_INT})")
        return value
    # An int stays an int where a float is expected: it is a number, and turning 50 into 50.0
    # would change the resolved config, and so the run_id of every stored run.
    return value if isinstance(value, int) else float(value)


def coerce(value, annotation):
    """`value` read as `annotation` (int, float, bool, str, an Optional of one, or anything else,
    which passes unchecked); raises ValueProblem."""
    options = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    if value is None:
        if type(None) in options:
            return None
        raise ValueProblem("expected a value, got nothing (null)")
    kinds = [o for o in options if o is not type(None)]
    if len(kinds) != 1 or kinds[0] not in (int, float, bool, str):
        return value
    kind = kinds[0]
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueProblem(f"expected true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ValueProblem(f"expected text, got {type(value).__name__} {value!r}")
        return value
    return number(value, kind is int)


def coerce_keys(params: dict, hints: dict, where: str, error) -> dict:
    """A copy of `params` with each value read as its declared type; raises `error` naming
    `where`.key for the first one that does not fit."""
    out = dict(params)
    for key, value in params.items():
        if key in hints:
            try:
                out[key] = coerce(value, hints[key])
            except ValueProblem as problem:
                raise error(f"{where}.{key}: {problem}") from None
    return out
