"""One published run file (the format of benchmarks/harness/published.py), read and checked key by
key before anything is written from it: an import validates every file first and then writes them
all in one transaction, so a bad file leaves the store as it was instead of half-imported.

A file must be UTF-8 JSON: an object with `run` (the run's row), `curves` and `evals` (lists of
rows) and `trace` (null or the memory arrays); every key known, every value of its column's type;
`status` done or diverged (only finished runs are published); `config_json` a run config of this
code's FORMAT_VERSION that agrees with the row's model, task and seed, and whose hash is the row's
`run_id` (benchmarks/harness/plan.py), so a file cannot pass one run's numbers off as another's.
Every problem is a PublishedError whose one-line message names the file and the key:

    .../copy/lstm/seed1-ab12.json: run.seed: expected an integer, got 'abc'
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ntm_bench.results.store import TRACE_ARRAYS

FINISHED = ("done", "diverged")
CONFIG_KEYS = (
    "format_version",
    "model",
    "model_params",
    "task",
    "task_params",
    "eval",
    "train",
    "seed",
)
INT64 = (-(2**63), 2**63 - 1)  # what an SQLite INTEGER holds


class PublishedError(ValueError):
    """A published run file that cannot be read or is not in the published format; the message
    is one line naming the file and the key."""


class Field(NamedTuple):
    """A key of a published object: the kind of its value, whether the key must be there, and
    whether its value may be null."""

    kind: str  # text, integer, real, boolean, object or list
    required: bool = False
    nullable: bool = True


TEXT = Field("text", required=True, nullable=False)
INTEGER = Field("integer", required=True, nullable=False)

DOCUMENT_FIELDS = {
    "run": Field("object", required=True, nullable=False),
    "curves": Field("list", required=True, nullable=False),
    "evals": Field("list", required=True, nullable=False),
    "trace": Field("object"),
}
# The runs columns (results/store.py RUN_COLUMNS and run_id) but the lease bookkeeping, which
# export leaves out.
RUN_FIELDS = {
    "run_id": TEXT,
    "model": TEXT,
    "task": TEXT,
    "seed": INTEGER,
    "profile": TEXT,
    "config_json": TEXT,
    "status": TEXT,
    **{name: Field("integer") for name in ("n_params", "threads")},
    **{name: Field("integer") for name in ("converged_step", "converged_sequences")},
    **{name: Field("text") for name in ("device", "torch_version", "git_sha", "error")},
    # the processor and settings that decide its floats, as JSON (benchmarks/process/fingerprint);
    # files published before fingerprints have none, and compare within tolerance
    "fingerprint_json": Field("text"),
    **{name: Field("real") for name in ("started_at", "finished_at", "wall_s")},
    **{name: Field("real") for name in ("final_cost_bits", "final_bit_errors")},
    "reference_cost_bits": Field("real"),
}
CURVE_FIELDS = {
    "split": TEXT,
    "step": INTEGER,
    "sequences": INTEGER,
    **{name: Field("real", required=True) for name in ("cost_bits", "bit_errors", "wall_s")},
}
EVAL_FIELDS = {
    "point": Field("text"),
    "axis": TEXT,
    "value": Field("integer", required=True),
    "cost_bits": Field("real", required=True),
    "bit_errors": Field("real", required=True),
    "n": Field("integer", required=True),
    "memory_needed": Field("integer"),
    "beyond_memory": Field("boolean"),
    "channels": Field("object"),
}


def load(path: Path) -> dict:
    """The checked document of the published run file at `path` (see the module docstring)."""
    document = read(path)
    check(path, document)
    parsed = config(path, document["run"])
    check_identity(path, document["run"], parsed)
    check_bits(path, document, parsed)
    return document


def read(path: Path) -> dict:
    """The JSON object in the file at `path`; PublishedError if it is not UTF-8 JSON text."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
        document = json.loads(text)
    except OSError as error:
        raise PublishedError(f"{path}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise PublishedError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except ValueError as error:
        raise PublishedError(f"{path}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise PublishedError(f"{path}: expected a JSON object, got a {kind_of(document)}")
    return document


def check(path: Path, document: dict) -> None:
    """PublishedError at the first key of `document` that is unknown, missing or mistyped."""
    check_fields(path, "", document, DOCUMENT_FIELDS)
    check_fields(path, "run.", document["run"], RUN_FIELDS)
    status = document["run"]["status"]
    if status not in FINISHED:
        raise PublishedError(
            f"{path}: run.status: {shown(status)}, expected {' or '.join(FINISHED)} "
            "(only finished runs are published)"
        )
    check_rows(path, "curves", document["curves"], CURVE_FIELDS, curve_point)
    check_rows(path, "evals", document["evals"], EVAL_FIELDS, eval_point)
    check_trace(path, document.get("trace"))
    check_fingerprint(path, document["run"].get("fingerprint_json"))
    check_numbers(path, document)


# What a number of a finished run can be: every cost, error count, count and time is a finite
# number >= 0 (a NaN or an infinity is a divergence, which the run's status says, never a point
# of its curve), and a curve's step and sequences are >= 1, an evaluation's n >= 1.
NON_NEGATIVE = {
    "run.": ("final_cost_bits", "final_bit_errors", "reference_cost_bits", "wall_s", "n_params"),
    "curves": ("cost_bits", "bit_errors", "wall_s"),
    "evals": ("cost_bits", "bit_errors"),
}
POSITIVE = {"curves": ("step", "sequences"), "evals": ("n",)}


def check_numbers(path: Path, document: dict) -> None:
    """PublishedError at the first number that no finished run can have (NON_NEGATIVE,
    POSITIVE): NaN, an infinity, a negative cost or count, a step or n below 1."""
    places = [("run.", document["run"])]
    for key in ("curves", "evals"):
        places += [(f"{key}[{i}].", row) for i, row in enumerate(document[key])]
    for where, row in places:
        group = where.split("[")[0]
        for name, lowest in [(n, 0) for n in NON_NEGATIVE.get(group, ())] + [
            (n, 1) for n in POSITIVE.get(group, ())
        ]:
            value = row.get(name)
            if value is None:
                continue
            if not math.isfinite(value) or value < lowest:
                bound = "a finite number" if lowest == 0 else "at least 1"
                extra = " >= 0" if lowest == 0 else ""
                raise PublishedError(
                    f"{path}: {where}{name}: {shown(value)}, expected {bound}{extra}"
                )


def check_fingerprint(path: Path, text: str | None) -> None:
    """A fingerprint, where there is one, is a JSON object."""
    if text is None:
        return
    try:
        value = json.loads(text)
    except ValueError as error:
        raise PublishedError(f"{path}: run.fingerprint_json: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise PublishedError(f"{path}: run.fingerprint_json: expected a JSON object")


def check_bits(path: Path, document: dict, config: dict) -> None:
    """No curve point or evaluation counts more bit errors per sequence than a sequence has
    scored bits (Task.scored_bits: the training range's largest for the curves, the point's size
    for an evaluation)."""
    from ntm_bench.benchmarks.harness.evaluate_kept import axes
    from ntm_bench.benchmarks.harness.plugins import build_task

    try:
        task = build_task(config["task"], **config["task_params"])
    except (KeyError, TypeError, ValueError) as error:
        raise PublishedError(f"{path}: run.config_json: cannot build its task ({error})") from None
    most = task.scored_bits()
    for index, row in enumerate(document["curves"]):
        if row["bit_errors"] is not None and row["bit_errors"] > most:
            raise PublishedError(
                f"{path}: curves[{index}].bit_errors: {shown(row['bit_errors'])}, more than the "
                f"{most} bits a training sequence has scored"
            )
    for index, row in enumerate(document["evals"]):
        point = eval_point(row)
        try:  # the sizes as `evaluate --at` reads them: a malformed point is named, not raised
            scored = task.scored_bits(**axes(f"{path}: evals[{index}].point", point, "AXIS=N"))
        except ValueError as error:
            message = str(error)
            raise PublishedError(
                message
                if message.startswith(str(path))
                else f"{path}: evals[{index}].point: {point!r}: {message}"
            ) from None
        if row["bit_errors"] is not None and row["bit_errors"] > scored:
            raise PublishedError(
                f"{path}: evals[{index}].bit_errors: {shown(row['bit_errors'])}, more than the "
                f"{scored} bits a sequence at {point} has scored"
            )


def check_fields(path: Path, where: str, mapping: dict, fields: dict) -> None:
    """`mapping` has only keys of `fields`, each required one, each value of its kind."""
    for key in mapping:
        if key not in fields:
            raise PublishedError(f"{path}: {where}{key}: unknown key (known: {', '.join(fields)})")
    for key, field in fields.items():
        if key not in mapping:
            if field.required:
                raise PublishedError(f"{path}: {where}{key}: missing")
            continue
        value = mapping[key]
        if value is None and field.nullable:
            continue
        if not is_kind(field.kind, value):
            raise PublishedError(
                f"{path}: {where}{key}: expected {article(field.kind)}"
                f"{' or null' if field.nullable else ''}, got {shown(value)}"
            )


def curve_point(row: dict) -> tuple:
    """The store's key of a curve row (besides run_id)."""
    return row["split"], row["step"]


def eval_point(row: dict) -> str:
    """The store's key of an eval row: a row without a point is the single-axis point
    axis=value (Store.write_evals)."""
    return row.get("point") or f"{row['axis']}={row['value']}"


def check_rows(path: Path, key: str, rows: list, fields: dict, identity) -> None:
    """Every row of `rows` is an object of `fields`, no two with the same `identity(row)`: the
    store keeps one row per key, so a second would silently replace the first."""
    seen = set()
    for index, row in enumerate(rows):
        where = f"{key}[{index}]"
        if not isinstance(row, dict):
            raise PublishedError(f"{path}: {where}: expected an object, got {shown(row)}")
        check_fields(path, f"{where}.", row, fields)
        name = identity(row)
        if name in seen:
            raise PublishedError(f"{path}: {where}: a second row for {shown(name)}")
        seen.add(name)


def check_trace(path: Path, trace: dict | None) -> None:
    """The memory trace is null or {array name: null or a rectangular array of numbers}."""
    for name, value in (trace or {}).items():
        if name not in TRACE_ARRAYS:
            raise PublishedError(
                f"{path}: trace.{name}: unknown key (known: {', '.join(TRACE_ARRAYS)})"
            )
        if value is None:
            continue
        try:
            np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise PublishedError(
                f"{path}: trace.{name}: expected a rectangular array of numbers"
            ) from None


def config(path: Path, run: dict) -> dict:
    """The run's config_json parsed: an object with every key of a run config, of this code's
    format version."""
    from ntm_bench.benchmarks.harness.plan import FORMAT_VERSION

    try:
        parsed = json.loads(run["config_json"])
    except ValueError as error:
        raise PublishedError(f"{path}: run.config_json: not JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise PublishedError(f"{path}: run.config_json: expected an object, got {shown(parsed)}")
    for key in CONFIG_KEYS:
        if key not in parsed:
            raise PublishedError(f"{path}: run.config_json.{key}: missing")
    if parsed["format_version"] != FORMAT_VERSION:
        raise PublishedError(
            f"{path}: run.config_json.format_version: {shown(parsed['format_version'])}, this "
            f"code's is {FORMAT_VERSION}: its numbers came from other code"
        )
    return parsed


def check_identity(path: Path, run: dict, config: dict) -> None:
    """The row's model, task and seed are its config's, and its run_id is the config's hash."""
    from ntm_bench.benchmarks.harness.config import ConfigError
    from ntm_bench.benchmarks.harness.plan import RunSpec

    for key in ("model", "task", "seed"):
        if run[key] != config[key] or type(run[key]) is not type(config[key]):
            raise PublishedError(
                f"{path}: run.{key}: {shown(run[key])}, but its config_json says "
                f"{shown(config[key])}"
            )
    try:
        run_id = RunSpec.from_config(config, run["profile"]).run_id
    except (ConfigError, AttributeError, KeyError, TypeError, ValueError) as error:
        raise PublishedError(f"{path}: run.config_json: not a run config ({error})") from None
    if run["run_id"] != run_id:
        raise PublishedError(
            f"{path}: run.run_id: {shown(run['run_id'])} is not the hash of its config_json "
            f"({run_id}): the file was edited"
        )


def is_kind(kind: str, value) -> bool:
    """Whether `value` (parsed JSON) is of `kind` and fits the SQLite column it goes to."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    if kind in ("integer", "real") and integer:
        return INT64[0] <= value <= INT64[1]
    return {
        "text": isinstance(value, str),
        "integer": False,
        "real": isinstance(value, float),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "list": isinstance(value, list),
    }[kind]


def kind_of(value) -> str:
    """The JSON name of `value`'s type, for messages."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def article(kind: str) -> str:
    """How a message names a value of `kind`."""
    return {
        "text": "a string",
        "integer": "an integer",
        "real": "a number",
        "boolean": "true or false",
        "object": "an object",
        "list": "a list",
    }[kind]


def shown(value) -> str:
    """A short one-line repr of `value` for a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
