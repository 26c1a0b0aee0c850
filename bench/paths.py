"""Where the harness finds its bundled definitions, and safe file names (imports nothing of its own)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def default_tasks_dir() -> Path:
    """The ``tasks/`` folder: ``$BENCH_TASKS_DIR`` or the one beside the package."""
    env = os.environ.get("BENCH_TASKS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "tasks"


def file_name(*parts: object, always_hash: bool = False) -> str:
    """A file-name-safe name for ``parts``, joined by ``__``. Characters outside ``[A-Za-z0-9._-]``
    become ``_``; since that can merge two names (``en@x_y`` and ``en_x@y``), a short hash of the
    exact parts is appended whenever a character was replaced (or always, with ``always_hash``)."""
    raw = "__".join(str(p) for p in parts)
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in raw)
    if safe == raw and not always_hash:
        return safe
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode("utf-8")).hexdigest()[:12]
    return f"{safe}__{digest}"
