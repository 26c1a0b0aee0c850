"""Benchmark: bench's exact search against faiss on a synthetic 1M-vector corpus.

Float32 inner-product top-k against ``faiss.IndexFlatIP``, and packed-binary Hamming top-k
against ``faiss.IndexBinaryFlat``, on the same vectors and queries, in one process. Also reports
the peak extra memory of bench's float32 search (the process's resident high-water mark above its resident
memory before the search) against the
size of the index; the target is at most 1.5x.

    python benchmarks/search_vs_faiss.py                 # 1,000,000 x 384, 1,000 queries, k=10
    python benchmarks/search_vs_faiss.py --docs 200000 --k 100
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from bench import measure, search
from bench import transforms as tf
from bench.environment import machine_line


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    rng = np.random.default_rng(0)
    docs = tf.normalize(rng.standard_normal((args.docs, args.dim), dtype=np.float32))
    queries = tf.normalize(rng.standard_normal((args.queries, args.dim), dtype=np.float32))
    print(f"corpus {args.docs:,} x {args.dim}, {args.queries:,} queries, k={args.k}, "
          f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}")  # fmt: skip

    for engine in ("faiss", "numpy"):
        search.ENGINE = engine
        measure.reset_peak_rss()
        before = measure.rss_bytes()
        seconds = best_of(lambda: search.search_dense(queries, docs, args.k, cosine=False), 1)
        peak = measure.peak_rss_bytes() - before
        print(f"float32  engine {engine:5s} {args.queries / seconds:9.1f} q/s   peak extra memory "
              f"{peak / 2**20:,.0f} MiB = {peak / docs.nbytes:.2f}x the index ({docs.nbytes / 2**20:,.0f} MiB; "
              f"target <= 1.5x)")  # fmt: skip
    search.ENGINE = "faiss"

    index = faiss.IndexFlatIP(args.dim)
    index.add(docs)
    ours = best_of(lambda: search.search_dense(queries, docs, args.k, cosine=False), args.repeats)
    theirs = best_of(lambda: index.search(queries, args.k), args.repeats)
    hits = search.search_dense(queries, docs, args.k, cosine=False)
    _, faiss_ids = index.search(queries, args.k)
    agree = float((hits.indices[:, 0] == faiss_ids[:, 0]).mean())
    print(f"float32  bench {args.queries / ours:9.1f} q/s   faiss IndexFlatIP {args.queries / theirs:9.1f} q/s"
          f"   ratio {theirs / ours:.2f}   top-1 agreement {agree:.3f}")  # fmt: skip

    bits, qbits = tf.binarize(docs), tf.binarize(queries)
    bindex = faiss.IndexBinaryFlat(args.dim)
    bindex.add(bits)
    ours = best_of(lambda: search.search_binary(qbits, bits, args.k), args.repeats)
    theirs = best_of(lambda: bindex.search(qbits, args.k), args.repeats)
    dist, _ = bindex.search(qbits, args.k)
    same = bool(np.array_equal(-search.search_binary(qbits, bits, args.k).scores, dist.astype(np.float32)))
    print(f"binary   bench {args.queries / ours:9.1f} q/s   faiss IndexBinaryFlat {args.queries / theirs:9.1f} q/s"
          f"   ratio {theirs / ours:.2f}   same distances {same}")  # fmt: skip
    search.ENGINE = "numpy"
    numpy_s = best_of(lambda: search.search_binary(qbits, bits, args.k), 1)
    print(f"binary   NumPy popcount kernel alone {args.queries / numpy_s:9.1f} q/s (why faiss is the engine)")


if __name__ == "__main__":
    main()
