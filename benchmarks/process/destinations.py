"""Where a command will write, checked before it writes anything: a run that trains for an hour
must not end in "is a directory" when it saves its report. Every command that takes a path to
write (run_suite.py's --store/--json/--checkpoints/--report-dir/--tensorboard, the speed suite's
--json, the published export's --dir) checks it here, so each gets the same answers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_destination(flag: str, path, kind: str, writes: bool = True) -> None:
    """ValueError, one line naming `flag` and `path`, unless `path` can be the `kind` ("file" or
    "folder") the command expects and, when it `writes`, be written:

    - a file where a folder belongs, or a folder where a file belongs, is refused;
    - an existing file is opened for writing and closed unchanged (permissions, read-only mounts;
      os.access would say yes to root);
    - anything else is made later under its nearest existing ancestor, which must be a folder in
      which a folder can be made and removed (not a file, not /proc, not a read-only mount), with
      no link to a missing place on the way.
    """
    target = Path(path).absolute()
    if kind == "file" and target.is_dir():
        raise ValueError(f"{flag} {path} is a folder, expected a file")
    if kind == "folder" and target.exists() and not target.is_dir():
        raise ValueError(f"{flag} {path} is a file, expected a folder")
    if not writes:
        return
    if kind == "file" and target.is_file():
        try:
            with open(target, "r+b"):
                pass
        except OSError as error:
            raise ValueError(f"{flag} {path} is not writable ({error.strerror})") from None
        return
    existing = target
    while not existing.exists():
        if existing.is_symlink():  # exists() follows it; mkdir would fail on the link itself
            raise ValueError(
                f"{flag} {path}: {existing} is a link to {os.readlink(existing)}, which does not "
                "exist"
            )
        existing = existing.parent
    if not existing.is_dir():
        what = "a file" if existing.is_file() else "not a folder"  # /dev/null, a socket
        raise ValueError(f"{flag} {path}: {existing} is {what}, so nothing can be made under it")
    try:
        Path(tempfile.mkdtemp(dir=existing, prefix=".ntm-bench-probe-")).rmdir()
    except OSError as error:
        raise ValueError(f"{flag} {path}: cannot write in {existing} ({error.strerror})") from None
