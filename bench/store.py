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

from bench import transforms as tf
from bench.cache import TMP_SUFFIX
from bench.errors import StorageError
from bench.types import Precision

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


def column_ranges(source: np.ndarray, dim: int) -> tf.Int8Ranges:
    """Per-dimension min/max of the truncated, normalized corpus, in one streaming pass."""
    low = np.full(dim, np.inf, np.float32)
    high = np.full(dim, -np.inf, np.float32)
    for start, stop in chunks(len(source)):
        x = tf.normalize(tf.truncate(np.asarray(source[start:stop]), dim))
        low, high = np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0))
    return tf.Int8Ranges(low=low, high=high)


def build_disk_index(precision: Precision, source: np.ndarray, dim: int, folder: Path, rescore_multiplier: int = 4):
    """The same index as ``search.build_index``, built chunk by chunk into a memory-mapped file."""
    from bench.search import Index

    n = len(source)
    path = Path(folder) / f"{precision.value}-{dim}.npy"
    ranges = column_ranges(source, dim) if precision is Precision.INT8 else None

    def prepared(start: int, stop: int) -> np.ndarray:
        x = tf.truncate(np.asarray(source[start:stop], dtype=np.float32), dim)
        if precision is Precision.INT8_TANH:
            return tf.int8_tanh(x)
        x = tf.normalize(x)
        if precision is Precision.FLOAT32:
            return x
        if precision is Precision.FLOAT16:
            return x.astype(np.float16)
        if precision is Precision.INT8:
            return tf.quantize_int8(x, ranges)
        return tf.binarize(x)

    dtype, width = {
        Precision.FLOAT32: (np.float32, dim), Precision.FLOAT16: (np.float16, dim), Precision.INT8: (np.int8, dim),
        Precision.INT8_TANH: (np.int8, dim),
    }.get(precision, (np.uint8, (dim + 7) // 8))  # fmt: skip
    vectors = write_matrix(path, (n, width), dtype, prepared)
    return Index(precision, dim, vectors, rescore_multiplier, ranges=ranges)
