"""The calibration set of scalar-quantized precisions (int8, uint8, int4, uint4 and their
rescoring and asymmetric cells): the corpus (default), a seeded sample of it, or a separate file
of texts embedded by the same model and backend. mteb warns that ranges fitted on fewer than
10,000 vectors are unstable; a sample makes that effect measurable on one corpus.

A calibration file is ``.txt`` (one text per line) or ``.jsonl`` / ``.jsonl.gz`` (one object per
line with ``text`` and optionally ``title``, joined as documents are: ``(title + " " + text)``).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.errors import InputError, parse_json
from bench.types import CalibrationSpec


def _open_text(path: Path) -> list[str]:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return raw.decode("utf-8-sig").splitlines()
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read the calibration file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _json_text(line: str, where: str) -> str:
    record = parse_json(line, where)
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise InputError(f"{where}: expected an object with a string field 'text'")
    title = record.get("title") or ""
    return f"{title} {record['text']}".strip() if isinstance(title, str) else record["text"].strip()


def read_texts(path: Path) -> dict[str, str]:
    """The calibration texts, keyed by their line (``line:N``); at least two non-empty ones."""
    path = Path(path)
    is_json = path.name.endswith((".jsonl", ".jsonl.gz"))
    texts = {}
    for lineno, line in enumerate(_open_text(path), start=1):
        if line.strip():
            text = _json_text(line, f"{path}:{lineno}") if is_json else line.strip()
            texts[f"line:{lineno}"] = text
    if len(texts) < 2:
        raise InputError(f"{path}: a calibration file needs at least 2 texts, found {len(texts)}")
    return texts


def describe(spec: CalibrationSpec) -> str:
    """How rows and the manifest record the calibration set; a file by name and content hash."""
    if spec.kind != "file":
        return spec.label
    return f"{spec.label}@sha256:{(spec.sha256 or file_sha256(spec.path))[:12]}"


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pinned_texts(spec: CalibrationSpec) -> tuple[dict[str, str], CalibrationSpec]:
    """A calibration file's texts and the spec pinned to the content they were read from: its
    hash before and after reading must agree (a file edited meanwhile is refused), and the cells
    are then keyed on that hash, never on whatever the file holds when a cell is written."""
    before = file_sha256(spec.path) if Path(spec.path).is_file() else ""
    texts = read_texts(spec.path)
    if file_sha256(spec.path) != before:
        raise InputError(f"{spec.path}: the calibration file changed while it was read; run again")
    return texts, replace(spec, sha256=before)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded sample of ``size`` of ``n`` corpus vectors, without replacement."""
    if size > n:
        raise InputError(f"calibration sample of {size} vectors is larger than the corpus ({n} documents)")
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
