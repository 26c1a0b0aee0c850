"""Run folders: created (or reopened to resume), locked while a process runs them, and cleaned up
after a failure before any cell finished, without ever touching what this process did not create.

- The run id is a checked name (``bench.names``), so the run folder is always a direct child of
  the output folder: never the output folder itself, its parent, or an absolute path.
- A folder this process creates gets a marker file (``.bench-run``) at once. An existing folder
  is reused only if it is a bench run folder (marker or manifest) with the same configuration;
  anything else is refused before a byte is written.
- Cleanup removes, one by one, only the files and folders this process recorded as it created
  them, and only while nothing else is in them: never a recursive delete, never a folder that
  existed before the run.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench import results
from bench.cache import CACHE_FOLDERS, remove_stale_temporaries
from bench.errors import InputError, StorageError
from bench.names import child
from bench.planning import config_fingerprint
from bench.types import SweepConfig

MARKER = ".bench-run"
# errno values that mean "this place cannot be written" (a storage problem, exit code 4), as
# opposed to a path that is wrong (a file where a folder should be: bad input, exit code 2)
STORAGE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


@dataclass
class RunDir:
    """A run folder and what this process created in it (in creation order)."""

    path: Path
    created: list[Path] = field(default_factory=list)
    lock_fd: int | None = None

    @property
    def made_here(self) -> bool:
        return self.path in self.created

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def record(self, path: Path) -> Path:
        """Note a file this process just created inside the run folder (removed on cleanup)."""
        if path not in self.created:
            self.created.append(path)
        return path


def run_id_for(config: SweepConfig, run_id: str | None) -> str:
    """The given run id, or a new one (time, config fingerprint and a random part)."""
    if run_id is not None:
        return run_id
    fingerprint = config_fingerprint(config)
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{fingerprint[:6]}-{os.urandom(2).hex()}"


def _storage_or_input(exc: OSError, where: Path, doing: str) -> Exception:
    kind = StorageError if exc.errno in STORAGE_ERRNOS else InputError
    return kind(f"{where}: cannot {doing} ({exc.strerror or exc})")


def _make_dirs(folder: Path, run: RunDir) -> None:
    """Create ``folder`` and any missing parents, recording each one created here."""
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours
        except OSError as exc:
            raise _storage_or_input(exc, path, "create the folder") from None
        run.record(path)


def _check_existing(path: Path, config: SweepConfig) -> None:
    if path.is_symlink() or not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder; pick another --run-id")
    manifest_path = path / results.MANIFEST
    if not (path / MARKER).is_file() and not manifest_path.is_file():
        raise InputError(f"{path}: exists and is not a bench run folder; refusing to write into it")
    if manifest_path.is_file():
        old = results.read_json(manifest_path)
        results.check_schema(old, manifest_path)
        if old.get("config_fingerprint") != config_fingerprint(config):
            raise InputError(f"{path}: exists with a different configuration; pick another --run-id")


def open_run_dir(config: SweepConfig, run_id: str | None) -> RunDir:
    """Create (or, for an existing bench run folder with the same config, reopen) the run folder,
    and lock it for this process. Nothing is written into a folder that fails the checks."""
    path = child(config.output_dir, run_id_for(config, run_id), "run id")
    run = RunDir(path)
    if path.exists() or path.is_symlink():
        _check_existing(path, config)
        _lock(run)
    else:
        _make_dirs(path, run)
        _lock(run)
        marker = {"created_by_pid": os.getpid(), "created_at": datetime.now(timezone.utc).isoformat()}
        try:
            (path / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        except OSError as exc:
            run.release()
            raise _storage_or_input(exc, path, "write into the run folder") from None
        run.record(path / MARKER)
    if not os.access(path, os.W_OK):
        run.release()
        raise StorageError(f"{path}: not writable")
    cells = path / "cells"
    if not cells.is_dir():
        _make_dirs(cells, run)
    remove_stale_temporaries(path)
    for name in CACHE_FOLDERS:
        remove_stale_temporaries(config.cache_dir / name)
    return run


def _lock(run: RunDir) -> None:
    """Hold an exclusive lock on the run folder itself for this process's lifetime (released on
    exit or kill; no lock file is left behind)."""
    import fcntl

    fd = os.open(run.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"{run.path}: another bench process is running this run; wait for it or pick "
                         "another --run-id") from None  # fmt: skip
    run.lock_fd = fd


def discard_if_empty(run: RunDir) -> None:
    """After a failure before any cell finished: remove what this process created, newest first,
    each only if it is still a file this process wrote or an empty folder. Anything else stays."""
    if not run.made_here or any((run.path / "cells").glob("*.json")):
        return
    for path in reversed(run.created):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # fails, and is kept, when anything is inside
            else:
                path.unlink()
        except OSError:
            continue
