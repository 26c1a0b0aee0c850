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

from bench.cells import with_context

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


def json_bytes(data: Mapping[str, Any]) -> bytes:
    """What ``write_json`` writes: the object made JSON-safe, indented, with a final newline."""
    return json.dumps(_clean(dict(data)), indent=2, sort_keys=False, allow_nan=False).encode("utf-8") + b"\n"


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, json_bytes(data))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; anything else (missing, not JSON, not an object) is an input error."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a JSON file") from None
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested or numbered past the parser
        raise InputError(f"{path}: not valid JSON ({str(exc) or 'nested too deeply':.160})") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_frame(path: Path, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A Parquet table that must hold ``columns``; a missing, truncated or foreign file is an input error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise InputError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    return frame


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


# Columns every reader of rows.parquet relies on.
ROW_COLUMNS = ("model", "task", "backend", "dim", "precision", "main_score", "main_score_name", "retention",
               "bytes_per_vector", "ndcg_at_10")  # fmt: skip


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """A run's manifest, checked against ``bench.schemas.ManifestSchema``."""
    from bench.schemas import ManifestSchema, validated

    path = Path(run_dir) / MANIFEST
    manifest = read_json(path)
    check_schema(manifest, path)
    validated(ManifestSchema, manifest, str(path))
    return manifest


def read_run(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Manifest and rows of a finished run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run directory not found")
    manifest = read_manifest(run_dir)
    if not (run_dir / ROWS).is_file():
        raise InputError(f"{run_dir / ROWS}: file not found (the run did not finish)")
    rows = read_frame(run_dir / ROWS, ROW_COLUMNS)
    if rows.empty:
        raise InputError(f"{run_dir / ROWS}: holds no rows")
    return manifest, with_context(rows)


def read_per_query(run_dir: Path) -> pd.DataFrame:
    frame = read_frame(Path(run_dir) / PER_QUERY, ("model", "task", "backend", "dim", "precision", "query_id"))
    return with_context(frame)


def read_intervals(run_dir: Path) -> pd.DataFrame:
    frame = read_frame(Path(run_dir) / INTERVALS, ("model", "task", "backend", "dim", "precision", "metric",
                                                    "ci_low", "ci_high"))  # fmt: skip
    return with_context(frame)
