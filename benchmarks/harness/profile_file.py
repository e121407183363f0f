"""A profile file read as YAML, and the `--set` overrides applied to what it holds: the layer
below benchmarks/harness/config.py, which checks the sections' keys and values. YAML is read
strictly: a key given twice in one mapping is an error (YAML itself keeps the last one silently),
and so is a file that is not UTF-8, not a mapping, or empty. Every problem is a ProfileFileError
whose one line names the file or the override; load_profile raises it as a ConfigError.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SECTIONS = ("seeds", "train", "models", "tasks", "sweep")  # a profile's sections


class ProfileFileError(ValueError):
    """A profile file or an override that cannot be read; the message is one line."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: YAML keeps the last one
    silently, so `lr` written twice would train with whichever came second."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged, not repeated
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
            except TypeError:  # a list or mapping as a key: PyYAML's own error says so
                break
        return super().construct_mapping(node, deep)


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping, and the line of its second appearance."""

    def __init__(self, key, line: int):
        super().__init__(f"key {key!r} given twice (again at line {line})")
        self.key, self.line = key, line


def read_yaml(path: Path) -> dict:
    """The profile file as a non-empty mapping; ProfileFileError naming the file otherwise."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as error:
        raise ProfileFileError(
            f"{path}: not UTF-8 text (byte {error.start} is 0x{error.object[error.start]:02x})"
        ) from None
    except OSError as error:
        raise ProfileFileError(f"{path}: cannot be read ({error.strerror})") from None
    except DuplicateKey as error:
        raise ProfileFileError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ProfileFileError(f"{path}: malformed YAML{where}") from None
    if not isinstance(raw, dict) or not raw:
        # an empty profile would train every registered model on every task at the defaults
        got = "an empty file" if raw is None or raw == {} else type(raw).__name__
        raise ProfileFileError(
            f"{path}: expected a mapping with sections {', '.join(SECTIONS)}, got {got}"
        )
    return raw


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` override to the raw profile dict, in place."""
    if "=" not in assignment:
        raise ProfileFileError(f"--set {assignment!r}: expected key=value, e.g. train.steps=100")
    key, text = assignment.split("=", 1)
    parts = key_parts(key.strip())
    if not all(parts):
        raise ProfileFileError(f"--set {assignment!r}: empty key component")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ProfileFileError(
            f"--set {assignment!r}: value is not valid YAML ({error.__class__.__name__})"
        ) from None
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ProfileFileError(f"--set {assignment!r}: {part} is not a section")
    node[parts[-1]] = value


def shadowing(raw: dict, assignment: str) -> list[str]:
    """The keys of `raw` that take precedence over the override `assignment` for some runs, as
    `dotted.key (value)`: a run's training settings are layered profile train < tasks.<t>.train
    < models.<m>.train < models.<m>.per_task.<t>.train, its model's parameters models.<m> <
    models.<m>.per_task.<t> (benchmarks/harness/plan.py), so `--set train.steps=300` leaves
    every run whose task or model states its own steps at those."""
    parts = key_parts(assignment.split("=", 1)[0].strip())
    models = raw.get("models") if isinstance(raw.get("models"), dict) else {}
    tasks = raw.get("tasks") if isinstance(raw.get("tasks"), dict) else {}

    def per_task(model: str, task: str | None = None) -> list[tuple[str, dict]]:
        own = models.get(model) if isinstance(models.get(model), dict) else {}
        table = own.get("per_task") if isinstance(own.get("per_task"), dict) else {}
        return [
            (f"models.{model}.per_task.{t}", entry)
            for t, entry in table.items()
            if isinstance(entry, dict) and task in (None, t)
        ]

    if len(parts) == 2 and parts[0] == "train":  # train.K
        places = [(f"tasks.{t}", e) for t, e in tasks.items() if isinstance(e, dict)]
        places += [(f"models.{m}", e) for m, e in models.items() if isinstance(e, dict)]
        places += [place for m in models for place in per_task(m)]
        within = ["train", parts[1]]
    elif len(parts) == 4 and parts[0] == "tasks" and parts[2] == "train":  # tasks.T.train.K
        places = [(f"models.{m}", e) for m, e in models.items() if isinstance(e, dict)]
        places += [place for m in models for place in per_task(m, parts[1])]
        within = ["train", parts[3]]
    elif len(parts) == 4 and parts[0] == "models" and parts[2] == "train":  # models.M.train.K
        places, within = per_task(parts[1]), ["train", parts[3]]
    elif len(parts) == 3 and parts[0] == "models" and parts[2] not in ("per_task", "train"):
        places, within = per_task(parts[1]), [parts[2]]  # models.M.K, a model parameter
    else:
        return []
    found = []
    for where, node in places:
        for part in within:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found.append(f"{where}.{'.'.join(within)} ({node})")
    return found


def key_parts(key: str) -> list[str]:
    """The sections of an override's key: split at its dots, except inside a plugin's
    module:Class name (`models.mypkg.rnn:Elman.hidden_size` -> models, mypkg.rnn:Elman,
    hidden_size), where the dots are the module's."""
    section, _, rest = key.partition(".")
    if section in ("models", "tasks") and ":" in rest:
        module, _, attribute = rest.partition(":")
        name, dot, tail = attribute.partition(".")
        return [section, f"{module}:{name}", *(tail.split(".") if dot else [])]
    return key.split(".")
