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

CHUNK_ROWS = 65536


def chunks(n: int, size: int = CHUNK_ROWS) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def write_matrix(path: Path, shape: tuple[int, int], dtype, fill: Callable[[int, int], np.ndarray]) -> np.memmap:
    """Create ``path`` (.npy) by calling ``fill(start, stop)`` for each chunk of rows; atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.pid{os.getpid()}{TMP_SUFFIX}")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    for start, stop in chunks(shape[0]):
        out[start:stop] = fill(start, stop)
    out.flush()
    del out
    os.replace(tmp, path)
    return read_matrix(path)


def read_matrix(path: Path) -> np.memmap:
    return np.load(path, mmap_mode="r")


def fill_rows(shape: tuple[int, int], dtype, fill: Callable[[int, int], np.ndarray], path: Path | None = None) -> np.ndarray:
    """A matrix filled chunk by chunk by ``fill(start, stop)``: in memory, or (with ``path``) in a
    memory-mapped ``.npy`` file. Both go through the same chunks, so they hold the same rows."""
    if path is not None:
        return write_matrix(path, shape, dtype, fill)
    out = np.empty(shape, dtype=dtype)
    for start, stop in chunks(shape[0]):
        out[start:stop] = fill(start, stop)
    return out

