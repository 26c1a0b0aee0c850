"""Plots drawn once per content: a run's plots are kept in the cache under a digest of the rows
they are drawn from and of the code that draws them, so a rerun with the same results copies
them instead of drawing them again (drawing is most of what a cached rerun costs)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from bench.cache import atomic_write_bytes

log = logging.getLogger(__name__)

# Columns that describe a run's own encode or when it ran: they never change what a plot shows.
RUN_STATE_COLUMNS = ("encode_seconds_documents", "encode_seconds_queries", "encoded_texts", "evaluated_at",
                     "cost_measured_at", "eval_seconds")  # fmt: skip


def plots_key(rows: pd.DataFrame, code: tuple[Path, ...]) -> str:
    """A digest of what the plots show (the rows, less run state) and of the code drawing them."""
    shown = rows.drop(columns=[c for c in RUN_STATE_COLUMNS if c in rows.columns])
    h = hashlib.sha256()
    for path in code:
        h.update(Path(path).read_bytes())
    h.update(shown.to_csv(index=False).encode("utf-8"))
    return h.hexdigest()[:24]


def cached(rows: pd.DataFrame, out_dir: Path, store: Path | None, draw: Callable[[pd.DataFrame, Path], None],
           code: tuple[Path, ...]) -> None:  # fmt: skip
    """Fill ``out_dir`` with the plots of ``rows``: copied from ``store`` when drawn before by the
    same ``code`` (the source files of the drawing functions), else drawn by ``draw`` and kept."""
    kept = store / plots_key(rows, code) if store is not None else None
    if kept is not None and (kept / ".complete").is_file():
        for png in sorted(kept.glob("*.png")):
            atomic_write_bytes(out_dir / png.name, png.read_bytes())
        return
    draw(rows, out_dir)
    if kept is not None:
        _keep(out_dir, kept)


def _keep(out_dir: Path, kept: Path) -> None:
    """Copy the drawn plots into the store as one folder, renamed into place when complete."""
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=kept.parent, prefix=f".{kept.name}.pid{os.getpid()}.", suffix=".tmp"))
        for png in out_dir.glob("*.png"):
            shutil.copyfile(png, tmp / png.name)
        (tmp / ".complete").write_text("")
        os.replace(tmp, kept)
    except OSError as exc:  # a plot cache that cannot be written only costs time next run
        log.debug("could not keep plots in %s: %s", kept, exc)
        shutil.rmtree(tmp, ignore_errors=True) if "tmp" in locals() else None
