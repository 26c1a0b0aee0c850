"""Where the harness finds its bundled definitions (imports nothing of its own)."""

from __future__ import annotations

import os
from pathlib import Path


def default_tasks_dir() -> Path:
    """The ``tasks/`` folder: ``$BENCH_TASKS_DIR`` or the one beside the package."""
    env = os.environ.get("BENCH_TASKS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "tasks"
