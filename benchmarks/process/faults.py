"""Fault injection for the crash-safety tests. `NTM_BENCH_KILL_AT=point:n` makes the process
SIGKILL itself the n-th time it reaches `point`; `NTM_BENCH_PAUSE_AT=point:n` makes it stop there
instead, say so on stderr (a line starting with PAUSED) and wait for a SIGINT, so a test can send
a real Ctrl-C that lands at a known step. The points sit where a crash hurts most:

    step         after an optimizer step, before anything is saved
    checkpoint   after the temporary checkpoint file is written, before it is renamed
    store        inside a result's store transaction, before COMMIT

Unset (always, outside tests) this is a dictionary lookup per call.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter

ENV = "NTM_BENCH_KILL_AT"
PAUSE_ENV = "NTM_BENCH_PAUSE_AT"
PAUSED = "ntm-bench: paused at"
PAUSE_LIMIT_S = 120.0  # a pause nobody answers ends, so a broken test fails instead of hanging
_seen: Counter = Counter()
_paused: Counter = Counter()


def _nth_visit(variable: str, point: str, seen: Counter) -> bool:
    """Whether the environment `variable` (point:n) names `point` and this is its n-th visit."""
    target = os.environ.get(variable)
    if not target:
        return False
    name, _, count = target.partition(":")
    if name != point:
        return False
    seen[point] += 1
    return seen[point] == int(count or 1)


def maybe_kill(point: str) -> None:
    """SIGKILL this process if NTM_BENCH_KILL_AT names `point` and this is its n-th visit."""
    if _nth_visit(ENV, point, _seen):
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_pause(point: str) -> None:
    """If NTM_BENCH_PAUSE_AT names `point` and this is its n-th visit, announce it on stderr and
    wait until a SIGINT arrives; the signal then goes on to the handler installed before (the
    training loop's, which checkpoints at the step boundary). The relay handler is in place before
    the announcement, so a SIGINT sent as soon as the line is read cannot slip past the wait."""
    if not _nth_visit(PAUSE_ENV, point, _paused):
        return
    arrived = []
    previous = signal.getsignal(signal.SIGINT)

    def relay(signum, frame):
        arrived.append(signum)
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGINT, relay)
    try:
        print(f"{PAUSED} {point}:{_paused[point]}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.01)  # polls a flag the handler sets: no race with the signal's arrival
    finally:
        if previous is not None:  # None: a handler set outside Python, which Python cannot put back
            signal.signal(signal.SIGINT, previous)
