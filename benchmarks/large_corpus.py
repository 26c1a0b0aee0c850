"""Benchmark: exact search over a corpus larger than memory, streamed from memory-mapped files.

Writes a synthetic corpus of N x 384 unit float32 vectors to disk (5M: about 7.7 GB), builds the
int8 and binary indexes from it chunk by chunk into their own files, and times 1,000 queries per
precision while sampling the process's anonymous resident memory (RssAnon; file-backed page
cache does not count). Then, at 1M vectors, compares the on-disk path with the same search on
arrays held in memory, side by side.

    python benchmarks/large_corpus.py                       # 5,000,000 docs (needs ~10 GB disk)
    python benchmarks/large_corpus.py --docs 2000000 --workdir /big/disk
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import measure, precisions, search, store
from bench import transforms as tf
from bench.environment import machine_line

TARGET_ANON = 2 * 2**30


class AnonPeak:
    """Samples RssAnon in a background thread; ``peak`` is the highest value seen."""

    def __init__(self, every: float = 0.01) -> None:
        self.peak, self.every, self._stop = measure.rss_anon_bytes() or 0, every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, measure.rss_anon_bytes() or 0)
            time.sleep(self.every)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, measure.rss_anon_bytes() or 0)


def synthetic(folder: Path, n: int, dim: int) -> np.memmap:
    def fill(start: int, stop: int) -> np.ndarray:
        rng = np.random.default_rng(start)
        return tf.normalize(rng.standard_normal((stop - start, dim), dtype=np.float32))

    return store.write_matrix(folder / "corpus.npy", (n, dim), np.float32, fill)


def timed(index, queries: np.ndarray, k: int) -> tuple[float, int]:
    with AnonPeak() as anon:
        t = time.perf_counter()
        index.search(queries, k)
        seconds = time.perf_counter() - t
    return seconds, anon.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=5_000_000)
    parser.add_argument("--compare-docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    queries = tf.normalize(np.random.default_rng(99).standard_normal((args.queries, args.dim), dtype=np.float32))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        corpus = synthetic(folder, args.docs, args.dim)
        print(f"corpus {args.docs:,} x {args.dim} float32 on disk: {corpus.nbytes / 2**30:.1f} GiB "
              f"(written in {time.perf_counter() - t:.0f} s); {args.queries:,} queries, k={args.k}")  # fmt: skip
        print(f"RssAnon before searching: {(measure.rss_anon_bytes() or 0) / 2**20:,.0f} MiB")
        indexes = {"float32": search.Index(precisions.get("float32"), args.dim, corpus)}
        for p in ("int8", "binary"):
            t = time.perf_counter()
            indexes[p] = search.build_index(p, corpus, args.dim, folder=folder)
            print(f"{p:8s} index built chunk by chunk in {time.perf_counter() - t:.0f} s "
                  f"({indexes[p].vectors.nbytes / 2**20:,.0f} MiB on disk)")  # fmt: skip
        for p, index in indexes.items():
            seconds, peak = timed(index, queries, args.k)
            print(f"{p:8s} on disk   {args.queries / seconds:8.1f} q/s   peak RssAnon {peak / 2**20:6,.0f} MiB "
                  f"({'under' if peak < TARGET_ANON else 'OVER'} 2 GiB)")  # fmt: skip
        n = min(args.compare_docs, args.docs)
        print(f"--- at {n:,} vectors: on disk (memory-mapped) against in memory, same search")
        for p, index in indexes.items():
            disk = search.Index(index.precision, args.dim, index.vectors[:n], ranges=index.ranges)
            memory = search.Index(index.precision, args.dim, np.array(index.vectors[:n]), ranges=index.ranges)
            timed(disk, queries[:50], args.k)  # warm the page cache for this slice
            disk_s = min(timed(disk, queries, args.k)[0] for _ in range(2))
            mem_s = min(timed(memory, queries, args.k)[0] for _ in range(2))
            print(f"{p:8s} in memory {args.queries / mem_s:8.1f} q/s   on disk {args.queries / disk_s:8.1f} q/s"
                  f"   ratio {mem_s / disk_s:.2f} (target >= 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
