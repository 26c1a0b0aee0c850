"""Content-addressed, on-disk store of float32 embeddings.

A *namespace* is everything that changes a vector except the text: model, revision, backend,
compute dtype, max length, prompt and role. Inside it, each vector is found by the SHA-256 of its
text. Vectors are written in chunks as soon as they are encoded, each chunk atomically (temp file
and rename) with a checksum, so a killed run loses at most the chunk in flight and a corrupted
chunk is detected, discarded and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bench import faults
from bench.errors import StorageError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2


def text_digest(text: str) -> bytes:
    """SHA-256 of a text's UTF-8 bytes (32 raw bytes)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


TMP_SUFFIX = ".tmp"
# The folders bench writes under a cache root (the only places it clears stale temporaries in).
CACHE_FOLDERS = ("embeddings", "costs", "matrices", "indexes", "onnx", "openvino", "cells", "plots", "weights")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part.

    The temporary file carries the writer's process id, so ``remove_stale_temporaries`` can tell
    the leftovers of a killed writer from a live one's file in flight."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise StorageError(f"{path.parent}: cannot write ({exc.strerror})") from None
    try:
        os.fchmod(fd, new_file_mode())  # mkstemp makes 0600; a file bench writes gets the umask's mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data[: len(data) // 2])
            faults.checkpoint("write")
            handle.write(data[len(data) // 2 :])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc}); finished results are kept") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_umask_lock = threading.Lock()


def _umask() -> int:
    with _umask_lock:  # os.umask can only be read by setting it: restore it at once
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode the user's umask gives a new file (0o666 minus the umask)."""
    return 0o666 & ~_umask()


def new_dir_mode() -> int:
    """The mode the user's umask gives a new folder (0o777 minus the umask)."""
    return 0o777 & ~_umask()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files left under ``folder`` by writers that no longer run."""
    removed = 0
    for tmp in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        match = re.search(r"\.pid(\d+)\.", tmp.name)
        pid = int(match.group(1)) if match else None
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _checksum(digests: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(digests).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest()


@dataclass
class Chunk:
    digests: np.ndarray  # (n, 32) uint8 (not "S32": numpy strips trailing NUL bytes from those)
    vectors: np.ndarray  # (n, dim) float32
    seconds: float  # wall time the backend spent encoding this chunk


class Namespace:
    """The vectors of one (model, revision, backend, dtype, max length, prompt, role)."""

    def __init__(self, root: Path, key: Mapping[str, object]) -> None:
        blob = json.dumps({"format": FORMAT_VERSION, **key}, sort_keys=True)
        self.key = dict(key)
        self.id = hashlib.sha256(blob.encode()).hexdigest()[:24]
        self.path = root / "embeddings" / self.id

    def _chunk_paths(self) -> list[Path]:
        return sorted(self.path.glob("chunk-*.npz"))

    def _read(self, path: Path) -> Chunk | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                chunk = Chunk(data["digests"], data["vectors"], float(data["seconds"]))
                stored = str(data["checksum"])
            ok = stored == _checksum(chunk.digests, chunk.vectors)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.debug("unreadable cache chunk %s: %s", path, exc)
            ok = False
        if not ok:
            log.warning("cache chunk %s is corrupted (bad checksum); discarding it", path.name)
            path.unlink(missing_ok=True)
            return None
        return chunk

    def fill(self, rows_of: Mapping[bytes, list[int]], out: np.ndarray) -> tuple[set[bytes], float]:
        """Copy cached vectors into ``out`` at the rows of each digest, one chunk file at a time
        (only one chunk is in memory at once); returns the digests found and the encode seconds
        recorded for them."""
        found: set[bytes] = set()
        seconds = 0.0
        for path in self._chunk_paths():
            chunk = self._read(path)
            if chunk is None:
                continue
            hits = 0
            for i, row in enumerate(chunk.digests):
                digest = row.tobytes()
                if digest in rows_of and digest not in found:
                    out[rows_of[digest]] = chunk.vectors[i]
                    found.add(digest)
                    hits += 1
            if hits:
                seconds += chunk.seconds * hits / len(chunk.digests)
        return found, seconds

    def store(self, digests: Sequence[bytes], vectors: np.ndarray, seconds: float) -> None:
        """Persist one encoded chunk atomically."""
        arr = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 32)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        name = hashlib.sha256(arr.tobytes()).hexdigest()[:24]
        if not (self.path / "namespace.json").exists():
            atomic_write_bytes(self.path / "namespace.json", json.dumps(self.key, indent=1).encode())
        buffer = _npz_bytes(
            digests=arr, vectors=vectors, seconds=np.float64(seconds),
            checksum=np.array(_checksum(arr, vectors)),
        )  # fmt: skip
        atomic_write_bytes(self.path / f"chunk-{name}.npz", buffer)
        faults.checkpoint("encode-chunk")


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


class EmbeddingCache:
    """The cache root; hands out namespaces."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def namespace(self, key: Mapping[str, object]) -> Namespace:
        return Namespace(self.root, key)

    def _record_path(self, kind: str, key: Mapping[str, object]) -> Path:
        blob = json.dumps({"format": FORMAT_VERSION, **key}, sort_keys=True)
        return self.root / kind / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"

    def load_record(self, kind: str, key: Mapping[str, object]) -> dict | None:
        """A small JSON record stored under ``key`` (None if absent or unreadable)."""
        try:
            return json.loads(self._record_path(kind, key).read_text(encoding="utf-8"))["value"]
        except (OSError, ValueError, KeyError):
            return None

    def store_record(self, kind: str, key: Mapping[str, object], value: Mapping[str, object]) -> None:
        payload = json.dumps({"key": dict(key), "value": dict(value)}, indent=1, allow_nan=False)
        atomic_write_bytes(self._record_path(kind, key), payload.encode("utf-8"))
