"""Progress that reads well on a terminal and in a CI log.

On a terminal, a stage is a tqdm bar. Anywhere else (CI logs, ``| tee``), a stage is plain lines
on stderr: ``bench: encode documents: 1,200/5,183 texts (23%), 41.2 texts/s, ETA 1m37s``, the
first once the stage has run for a few seconds, then at most one every
``$BENCH_PROGRESS_SECONDS`` (default 30), and a last one when it ends, so a log shows where the
time went without flooding it. Stages shorter than the first delay print nothing.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

FIRST_LINE_SECONDS = 5.0


def interval() -> float:
    """Seconds between plain progress lines (``$BENCH_PROGRESS_SECONDS``; 0 prints every update)."""
    try:
        return max(0.0, float(os.environ.get("BENCH_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def on_terminal() -> bool:
    return sys.stderr.isatty()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class Progress:
    """Counts the work of one stage: ``update(n)`` as it goes, ``close()`` at the end."""

    def __init__(self, desc: str, total: int, unit: str = "text") -> None:
        self.desc, self.total, self.unit, self.done = desc, total, unit, 0
        self.started = self.last = time.monotonic()
        self.printed = False
        self.bar = None
        if on_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now, every = time.monotonic(), interval()
        first_due = not self.printed and now - self.started >= min(FIRST_LINE_SECONDS, every)
        if first_due or (self.printed and now - self.last >= every):
            self._line(now)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.printed or (time.monotonic() - self.started >= min(FIRST_LINE_SECONDS, interval())):
            self._line(time.monotonic(), final=True)

    def _line(self, now: float, final: bool = False) -> None:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        units = f"{self.unit}s"
        if final:
            text = f"{self.done:,}/{self.total:,} {units} in {_duration(elapsed)} ({rate:.1f} {units}/s)"
        else:
            pct = 100 * self.done / self.total if self.total else 100.0
            eta = f", ETA {_duration((self.total - self.done) / rate)}" if rate > 0 else ""
            text = f"{self.done:,}/{self.total:,} {units} ({pct:.0f}%), {rate:.1f} {units}/s{eta}"
        print(f"bench: {self.desc}: {text}", file=sys.stderr, flush=True)
        self.printed, self.last = True, now


@contextmanager
def counting(desc: str, total: int, unit: str = "text") -> Iterator[Progress]:
    progress = Progress(desc, total, unit)
    try:
        yield progress
    finally:
        progress.close()


@contextmanager
def stage(desc: str) -> Iterator[None]:
    """A stage without counts (loading a model, measuring costs): named at its start on a
    terminal, and in any case when it ends if it took a while."""
    started = time.monotonic()
    if on_terminal():
        print(f"bench: {desc} ...", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        if elapsed >= min(FIRST_LINE_SECONDS, interval()):
            print(f"bench: {desc}: done in {_duration(elapsed)}", file=sys.stderr, flush=True)
