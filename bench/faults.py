"""Named points where a test may kill the process, to prove that no moment loses finished work.

``BENCH_KILL_AT=<point>:<n>`` sends SIGKILL to this process the n-th time it passes ``<point>``
(``encode-chunk`` after a chunk of vectors is stored, ``cell`` after a cell's file is written,
``write`` halfway through writing any result file). Unset, a checkpoint costs one dictionary
lookup. Used by tests/test_crash_safety.py; harmless otherwise.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_seen: Counter[str] = Counter()


def checkpoint(point: str) -> None:
    target = os.environ.get("BENCH_KILL_AT")
    if not target:
        return
    name, _, count = target.partition(":")
    if name != point:
        return
    _seen[point] += 1
    if _seen[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
