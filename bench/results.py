"""Result files of a run: rows, per-query scores and the manifest, written atomically.

Layout of ``results/<run-id>/``::

    manifest.json        resolved config, git sha and dirty flag, versions, hardware, times
    rows.parquet/.csv    one tidy row per (model, task, backend, dim, precision)
    per_query.parquet    every metric per query per cell
    intervals.parquet    bootstrap 95% confidence interval of every metric of every cell
    cells/*.json         one file per finished cell (lets an interrupted run resume)
    table.md, plots/     rendered by ``bench report`` from the files above only
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from bench.cache import atomic_write_bytes
from bench.errors import InputError

SCHEMA_VERSION = 1
ROWS = "rows.parquet"
PER_QUERY = "per_query.parquet"
INTERVALS = "intervals.parquet"
MANIFEST = "manifest.json"


def _clean(value: Any) -> Any:
    """JSON-safe: no NaN/Infinity (they become null), numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    payload = json.dumps(_clean(dict(data)), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_bytes(path, payload.encode("utf-8") + b"\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as Parquet (and CSV beside it for ``rows``), atomically."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))


def check_schema(manifest: Mapping[str, Any], where: Path) -> None:
    version = manifest.get("schema_version")
    if not isinstance(version, int):
        raise InputError(f"{where}: no schema_version; not a bench run manifest")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{where}: schema version {version} is newer than this bench understands "
            f"({SCHEMA_VERSION}); upgrade bench to read it"
        )


def read_run(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Manifest and rows of a finished run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run directory not found")
    manifest = read_json(run_dir / MANIFEST)
    check_schema(manifest, run_dir / MANIFEST)
    if not (run_dir / ROWS).is_file():
        raise InputError(f"{run_dir / ROWS}: file not found (the run did not finish)")
    return manifest, pd.read_parquet(run_dir / ROWS)


def read_per_query(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / PER_QUERY
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return pd.read_parquet(path)
