"""Run folders: created (or reopened to resume), locked while a process runs them, and removed
again when a run fails before finishing any cell."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from bench import results
from bench.cache import remove_stale_temporaries
from bench.errors import InputError
from bench.planning import config_fingerprint
from bench.types import SweepConfig


def open_run_dir(config: SweepConfig, run_id: str | None) -> Path:
    """Create (or, for a given ``run_id`` with the same config, reopen) the run directory."""
    fingerprint = config_fingerprint(config)
    if run_id is None:  # the random part keeps two runs started in the same second apart
        run_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{fingerprint[:6]}-{os.urandom(2).hex()}"
    run_dir = config.output_dir / run_id
    manifest_path = run_dir / results.MANIFEST
    if manifest_path.is_file():
        old = results.read_json(manifest_path)
        results.check_schema(old, manifest_path)
        if old.get("config_fingerprint") != fingerprint:
            raise InputError(f"{run_dir}: exists with a different configuration; pick another --run-id")
    try:
        (run_dir / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{run_dir}: cannot create the run directory ({exc.strerror})") from None
    if not os.access(run_dir, os.W_OK):
        raise InputError(f"{run_dir}: not writable")
    remove_stale_temporaries(run_dir)
    remove_stale_temporaries(config.cache_dir) if config.cache_dir.is_dir() else None
    return run_dir


def lock_run_dir(run_dir: Path):
    """Hold an exclusive lock on the run folder for this process's lifetime (released on exit or kill)."""
    import fcntl

    handle = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(f"{run_dir}: another bench process is running this run; wait for it or pick another --run-id") from None
    return handle


def discard_if_empty(run_dir: Path) -> None:
    """A run that failed before finishing any cell leaves nothing behind."""
    if not any((run_dir / "cells").glob("*.json")):
        shutil.rmtree(run_dir, ignore_errors=True)
