"""Fault injection for the crash-safety tests: `NTM_BENCH_KILL_AT=point:n` makes the process
SIGKILL itself the n-th time it reaches `point`. The points sit where a crash hurts most:

    step         after an optimizer step, before anything is saved
    checkpoint   after the temporary checkpoint file is written, before it is renamed
    store        inside a result's store transaction, before COMMIT

Unset (always, outside tests) this is a dictionary lookup per call.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "NTM_BENCH_KILL_AT"
_seen: Counter = Counter()


def maybe_kill(point: str) -> None:
    """SIGKILL this process if NTM_BENCH_KILL_AT names `point` and this is its n-th visit."""
    target = os.environ.get(ENV)
    if not target:
        return
    name, _, count = target.partition(":")
    if name != point:
        return
    _seen[point] += 1
    if _seen[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
