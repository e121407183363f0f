"""The paper's published values (reports/paper_reference.yaml), loaded and cited.

`load_reference()` returns the parsed file with every entry's `models` and `source` checked, so a
typo in the data file fails loudly instead of silently drawing nothing.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REFERENCE_PATH = Path(__file__).with_name("paper_reference.yaml")


def load_reference(path: str | Path = REFERENCE_PATH) -> dict:
    """The reference data: {"sources": {key: citation}, "tasks": {task: {...}}, ...}."""
    data = yaml.safe_load(Path(path).read_text())
    sources = data.get("sources") or {}
    for task, entries in (data.get("tasks") or {}).items():
        for kind in ("curve", "generalization"):
            for entry in entries.get(kind) or []:
                if entry.get("source") not in sources or not entry.get("models"):
                    raise ValueError(
                        f"{path}: tasks.{task}.{kind}: every entry needs models and a known "
                        f"source, got {entry}"
                    )
        for kind in ("optimum_cost_bits", "chance_cost_bits"):
            if kind in entries and entries[kind].get("source") not in sources:
                raise ValueError(
                    f"{path}: tasks.{task}.{kind}: unknown source {entries[kind].get('source')!r}"
                )
    return data


def task_reference(reference: dict, task: str) -> dict:
    """The entries for `task` (an empty dict for a task the paper does not have)."""
    return (reference.get("tasks") or {}).get(task) or {}


def cite(reference: dict, key: str) -> str:
    """The full citation of source `key`."""
    return reference["sources"][key]


def setting_matches(setting: dict, task_params: list[dict]) -> bool:
    """Whether every run's task parameters hold exactly `setting` (keys a run lacks do not
    match)."""
    return bool(task_params) and all(
        all(key in params and params[key] == value for key, value in setting.items())
        for params in task_params
    )


def setting_difference(setting: dict, task_params: list[dict]) -> str:
    """'max_length 10 (paper 20), width 4 (paper 8)': how the runs differ from `setting`."""
    ours = {}
    for params in task_params:
        for key, value in setting.items():
            if params.get(key, "unset") != value:
                ours.setdefault(key, set()).add(str(params.get(key, "unset")))
    return ", ".join(
        f"{key} {'/'.join(sorted(values))} (paper {setting[key]})" for key, values in ours.items()
    )


def comparable_entries(task_entries: dict, kind: str, task_params: list[dict]) -> tuple[list, str]:
    """The `kind` entries ("curve", "generalization") that may be drawn beside runs with
    `task_params`: all of them when the runs have the paper's setting, else only values of 0
    (a solved task costs 0 whatever its size). Returns (entries, the setting difference or "")."""
    entries = [e for e in task_entries.get(kind) or [] if e.get("cost_bits") is not None]
    setting = task_entries.get("setting") or {}
    if setting_matches(setting, task_params):
        return entries, ""
    return [e for e in entries if as_range(e["cost_bits"]) == (0.0, 0.0)], setting_difference(
        setting, task_params
    )


def as_range(value) -> tuple[float, float] | None:
    """(low, high) of a scalar or a [low, high] pair; None for null."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return float(value[0]), float(value[-1])
    return float(value), float(value)


def short(value: float) -> str:
    """84, 0.5, 133.14, 30k, 1M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def format_value(value) -> str:
    """'84', '0.5-2', '100k-200k' or 'n/a' for a scalar, a range or null, as the page prints
    them."""
    span = as_range(value)
    if span is None:
        return "n/a"
    low, high = (short(v) for v in span)
    return low if low == high else f"{low}-{high}"


def reference_rows(reference: dict, tasks: list[str]) -> list[dict]:
    """Every published value for `tasks` as flat rows (task, models, what, value, where, source)
    for the page's reference table."""
    rows = []
    for task in tasks:
        entries = task_reference(reference, task)
        if entries.get("setting"):
            rows.append(setting_row(reference, task, entries["setting"]))
        for entry in entries.get("curve") or []:
            where = (
                ""
                if entry.get("sequences") is None
                else f"at {format_value(entry['sequences'])} sequences"
            )
            rows.append(reference_row(reference, task, entry, entry.get("cost_bits"), where=where))
        for entry in entries.get("generalization") or []:
            where = f"{entry['axis']} = {entry['value']}"
            rows.append(reference_row(reference, task, entry, entry["cost_bits"], where=where))
        rows += level_rows(reference, task, entries)
    return rows


def setting_row(reference: dict, task: str, setting: dict) -> dict:
    """The reference table's row of the paper's task parameters `setting` for `task`."""
    return {
        "task": task,
        "models": "all",
        "what": "the paper's task parameters (values other than 0 "
        "are drawn only for runs with exactly these)",
        "value": "",
        "where": ", ".join(f"{k} = {v}" for k, v in setting.items()),
        "approx": False,
        "source": cite(reference, "graves2014"),
    }


def reference_row(
    reference: dict, task: str, entry: dict, value, where: str, models: str | None = None
) -> dict:
    """The reference table's row of one `entry` of `task`: its `value` (a scalar, a range or
    null) stated `where`, for `models` (default: the entry's models)."""
    return {
        "task": task,
        "models": ", ".join(entry["models"]) if models is None else models,
        "what": entry.get("note", ""),
        "value": format_value(value),
        "where": where,
        "approx": bool(entry.get("approx")),
        "source": cite(reference, entry["source"]),
    }


def level_rows(reference: dict, task: str, entries: dict) -> list[dict]:
    """The reference table's rows of the optimum and the chance level of `task`'s `entries`,
    where the paper states them."""
    rows = []
    for kind, label in (("optimum_cost_bits", "optimum"), ("chance_cost_bits", "chance level")):
        if kind in entries:
            entry = entries[kind]
            where = ", ".join(
                f"{k} = {v}"
                for k, v in (entry.get("setting", entries.get("setting")) or {}).items()
            )
            rows.append(reference_row(reference, task, entry, entry["value"], where, label))
    return rows
