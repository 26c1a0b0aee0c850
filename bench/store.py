"""On-disk, memory-mapped matrices for corpora larger than memory.

A matrix is a ``.npy`` file filled chunk by chunk through a memory map and renamed into place
when complete, so a reader sees either nothing or the whole matrix. Reading maps it: pages come
from the file (page cache), not from anonymous memory, so scanning a corpus of any size keeps
the process's anonymous memory flat.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from bench.cache import TMP_SUFFIX
from bench.errors import StorageError

CHUNK_ROWS = 65536


def chunks(n: int, size: int = CHUNK_ROWS) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def open_matrix(tmp: Path, shape: tuple[int, int], dtype) -> np.memmap:
    """A new ``.npy`` file mapped for writing, its blocks allocated on disk first.

    A plain memory map over a sparse file meets a full disk only when a page is written back, as a
    SIGBUS that kills the process; allocating every block up front turns that into an ordinary
    ``StorageError`` here, before any work is done."""
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    size = os.path.getsize(tmp)
    try:
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except OSError as exc:
        del out
        Path(tmp).unlink(missing_ok=True)
        raise StorageError(f"{tmp.parent}: cannot allocate {size:,} bytes for a matrix ({exc.strerror or exc})") from None
    return out


def write_matrix(path: Path, shape: tuple[int, int], dtype, fill: Callable[[int, int], np.ndarray]) -> np.memmap:
    """Create ``path`` (.npy) by calling ``fill(start, stop)`` for each chunk of rows; atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.pid{os.getpid()}{TMP_SUFFIX}")
    out = open_matrix(tmp, shape, dtype)
    for start, stop in chunks(shape[0]):
        out[start:stop] = fill(start, stop)
    out.flush()
    del out
    seal_matrix(tmp, path)
    return read_matrix(path)


def read_matrix(path: Path) -> np.memmap:
    return np.load(path, mmap_mode="r")


def _digest_file(path: Path) -> str:
    from bench.weights import file_digest

    return file_digest(path)


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def seal_matrix(tmp: Path, final: Path) -> None:
    """Record the finished matrix's checksum, then move it into place (checksum first: a matrix
    without one is never trusted)."""
    from bench.cache import atomic_write_bytes

    atomic_write_bytes(_checksum_path(final), _digest_file(tmp).encode())
    os.replace(tmp, final)


def matrix_intact(path: Path) -> bool:
    """Whether a stored matrix still matches its checksum; a damaged one (or one without a
    checksum) is deleted, with a warning, so it is rebuilt from the cache chunks."""
    import logging

    recorded = _checksum_path(path)
    try:
        ok = recorded.read_text().strip() == _digest_file(path)
    except OSError:
        ok = False
    if not ok:
        logging.getLogger(__name__).warning("%s does not match its checksum; rebuilding it", path.name)
        path.unlink(missing_ok=True)
        recorded.unlink(missing_ok=True)
    return ok


def fill_rows(shape: tuple[int, int], dtype, fill: Callable[[int, int], np.ndarray], path: Path | None = None) -> np.ndarray:
    """A matrix filled chunk by chunk by ``fill(start, stop)``: in memory, or (with ``path``) in a
    memory-mapped ``.npy`` file. Both go through the same chunks, so they hold the same rows."""
    if path is not None:
        return write_matrix(path, shape, dtype, fill)
    out = np.empty(shape, dtype=dtype)
    for start, stop in chunks(shape[0]):
        out[start:stop] = fill(start, stop)
    return out

