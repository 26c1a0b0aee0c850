"""Exact top-k search over every precision's index, with optional rescoring.

What is stored and how a pair is scored comes from the precision's strategy
(``bench.precisions``); this module has one kernel per kind of scoring, not per precision.

Every search streams the corpus in chunks and the queries in blocks, so extra memory is bounded
by ``query_block * doc_chunk`` scores plus one converted chunk, whatever the corpus size. Ties are
broken by document position (lower first), so results are deterministic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import precisions, store
from bench import transforms as tf
from bench.precisions import Precision, Scoring

try:  # faiss's BLAS and SIMD popcount beat NumPy here; it is the engine where it is installed
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a dependency; NumPy is the fallback
    faiss = None

# "faiss" or "numpy"; $BENCH_SEARCH_ENGINE=numpy forces the pure NumPy kernels.
ENGINE = os.environ.get("BENCH_SEARCH_ENGINE", "faiss" if faiss is not None else "numpy")
QUERY_BLOCK = 256


def engine_identity() -> dict[str, str | None]:
    """The search engine and its library versions: part of a cell's identity, since BLAS kernels
    may order near-ties differently and run at other speeds."""
    return {"engine": ENGINE, "faiss": getattr(faiss, "__version__", None) if ENGINE == "faiss" else None,
            "numpy": np.__version__}  # fmt: skip

DOC_CHUNK = 32768
_EXACT_FLOAT32_LIMIT = 2**24  # integer dot products up to this are exact in float32


@dataclass(frozen=True)
class Hits:
    """Top-k results: document positions and scores, best first, per query."""

    indices: np.ndarray  # (n_queries, k) int64
    scores: np.ndarray  # (n_queries, k) float32 (binary: minus the Hamming distance)


def _order(scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((indices, -scores), axis=-1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(indices, order, 1)


def top_k(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per row by (score descending, index ascending), exactly, ties included."""
    if scores.shape[1] <= k:
        return _order(scores, indices)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_s = np.take_along_axis(scores, part, 1)
    top_i = np.take_along_axis(indices, part, 1)
    kth = top_s.min(axis=1, keepdims=True)
    tied_rows = np.flatnonzero((scores >= kth).sum(axis=1) > k)
    for r in tied_rows:  # rare for floats: settle ties at the cut by index
        s, i = _order(scores[r : r + 1], indices[r : r + 1])
        top_s[r], top_i[r] = s[0, :k], i[0, :k]
    return _order(top_s, top_i)


def _above(scores: np.ndarray, offset: int, threshold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the scores strictly above ``threshold`` (padded with -inf): (B, m) scores, indices.

    Chunks arrive in increasing document order, so a later document that only ties the current
    k-th best loses on position anyway: a strict comparison keeps the result exact."""
    rows, cols = np.nonzero(scores > threshold[:, None])
    counts = np.bincount(rows, minlength=len(scores))
    width = int(counts.max()) if len(rows) else 0
    out_s = np.full((len(scores), width), -np.inf, dtype=scores.dtype)
    out_i = np.full((len(scores), width), np.iinfo(np.int64).max, dtype=np.int64)
    if width:
        pos = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        out_s[rows, pos] = scores[rows, cols]
        out_i[rows, pos] = cols + offset
    return out_s, out_i


def _chunks(n_docs: int, k: int):
    """Corpus ranges: a small first one (a cheap full selection sets the bar), then full chunks."""
    first = min(DOC_CHUNK, max(8 * k, 2048))
    yield 0, min(first, n_docs)
    for d0 in range(first, n_docs, DOC_CHUNK):
        yield d0, min(d0 + DOC_CHUNK, n_docs)


def _scan(n_docs: int, n_queries: int, k: int, score_block) -> Hits:
    """Drive ``score_block(q0, q1, d0, d1) -> scores`` over blocks; keep the running top-k.

    The first chunk of a query block goes through a full selection; later chunks only pass on
    the scores that beat the current k-th best, which is cheap once the top-k has settled."""
    all_s, all_i = [], []
    for q0 in range(0, n_queries, QUERY_BLOCK):
        q1 = min(q0 + QUERY_BLOCK, n_queries)
        best: tuple[np.ndarray, np.ndarray] | None = None
        for d0, d1 in _chunks(n_docs, k):
            scores = score_block(q0, q1, d0, d1)
            if best is None or best[0].shape[1] < k:
                idx = np.broadcast_to(np.arange(d0, d1, dtype=np.int64), scores.shape)
                if best is not None:
                    scores, idx = np.concatenate([best[0], scores], 1), np.concatenate([best[1], idx], 1)
                best = top_k(scores, idx, k)
                continue
            cand_s, cand_i = _above(scores, d0, best[0][:, -1])
            if cand_s.shape[1]:
                best = top_k(np.concatenate([best[0], cand_s], 1), np.concatenate([best[1], cand_i], 1), k)
        all_s.append(best[0])
        all_i.append(best[1])
    return Hits(indices=np.concatenate(all_i), scores=np.concatenate(all_s).astype(np.float32))


def search_dense(queries: np.ndarray, docs: np.ndarray, k: int, cosine: bool = True) -> Hits:
    """Exact inner-product (or cosine) top-k over float32/float16/int8 vectors."""
    if ENGINE == "faiss" and not cosine and docs.dtype == np.float32:
        return _faiss_inner(np.ascontiguousarray(queries, np.float32), docs, k)
    wide = docs.dtype == np.int8 and docs.shape[1] * 128 * 128 >= _EXACT_FLOAT32_LIMIT
    return search_decoded(queries, docs, k, lambda chunk: chunk, cosine, np.float64 if wide else np.float32)


def _faiss_inner(queries: np.ndarray, docs: np.ndarray, k: int) -> Hits:
    def run(q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        return faiss.knn(q, docs, kk, faiss.METRIC_INNER_PRODUCT)

    return _faiss_exact(run, queries, len(docs), k)


def search_decoded(queries: np.ndarray, docs: np.ndarray, k: int, decode, cosine: bool, compute=np.float32) -> Hits:
    """Exact top-k of ``queries`` against ``decode(chunk)`` of the stored rows, chunk by chunk:
    the inner product, or the cosine. ``decode`` turns stored rows into the values scored (codes,
    upcast floats, dequantized coordinates), so only one converted chunk is held at a time."""
    q = np.asarray(queries).astype(compute)
    q_inv = _inverse_norms(q) if cosine else None

    def score_block(q0, q1, d0, d1):
        chunk = np.asarray(decode(docs[d0:d1])).astype(compute, copy=False)
        scores = q[q0:q1] @ chunk.T
        if cosine:
            scores *= q_inv[q0:q1, None]
            scores *= _inverse_norms(chunk)[None, :]
        return scores.astype(np.float32, copy=False)

    return _scan(len(docs), len(queries), k, score_block)


def _faiss_exact(run, queries: np.ndarray, n_docs: int, k: int, margin: int | None = None) -> Hits:
    """faiss's top-k with our tie rule (lower position first), exactly.

    faiss breaks ties at the cut its own way. Asking for a margin beyond k settles it: when the
    k-th score beats the last returned one, every document scoring at least the k-th is among the
    results, and sorting by (score, position) gives the exact answer. Rows whose tie runs past the
    margin are asked again with a four times wider one (at worst, the whole corpus)."""
    wide = min(n_docs, k + (margin or max(16, k // 4)))
    scores, indices = _order(*(a.astype(t) for a, t in zip(run(queries, wide), (np.float32, np.int64))))
    unsure = np.flatnonzero(scores[:, k - 1] <= scores[:, wide - 1]) if wide < n_docs else []
    scores, indices = scores[:, :k].copy(), indices[:, :k].copy()
    if len(unsure):
        again = _faiss_exact(run, queries[unsure], n_docs, k, 4 * (wide - k))
        scores[unsure], indices[unsure] = again.scores, again.indices
    return Hits(indices=indices, scores=scores)


def _inverse_norms(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    return np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(x.dtype)


def _as_words(bits: np.ndarray) -> np.ndarray:
    """View packed bits as uint64 words when the width allows it (popcount is then 8x fewer)."""
    if bits.shape[1] % 8 == 0:
        return np.ascontiguousarray(bits).view(np.uint64)
    return bits


def hamming(query_bits: np.ndarray, doc_bits: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between packed bit rows, by XOR and popcount."""
    q, d = _as_words(query_bits), _as_words(doc_bits)
    out = np.zeros((len(q), len(d)), dtype=np.int32)
    for w in range(q.shape[1]):
        out += np.bitwise_count(q[:, w, None] ^ d[None, :, w])
    return out


def search_binary(query_bits: np.ndarray, doc_bits: np.ndarray, k: int) -> Hits:
    """Exact Hamming top-k over packed bits; the score is minus the distance."""
    if ENGINE == "faiss":
        doc_bits = np.ascontiguousarray(doc_bits)

        def run(q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            dist, idx = faiss.knn_hamming(q, doc_bits, kk)
            return -dist.astype(np.float32), idx

        # Hamming distances tie often: a wider first margin saves second scans
        return _faiss_exact(run, np.ascontiguousarray(query_bits), len(doc_bits), k, max(64, k))
    return _binary_numpy(query_bits, doc_bits, k)


def _binary_numpy(query_bits: np.ndarray, doc_bits: np.ndarray, k: int) -> Hits:

    def score_block(q0, q1, d0, d1):
        return -hamming(query_bits[q0:q1], doc_bits[d0:d1]).astype(np.float32)

    return _scan(len(doc_bits), len(query_bits), k, score_block)


RESCORE_DEQUANTIZED_BYTES = 256 * 2**20  # at most this much float32 for the shared candidates


def rescore(queries: np.ndarray, docs: np.ndarray, candidates: Hits, dequantize, k: int) -> Hits:
    """Second stage: re-rank each query's candidates by the float32 query's inner product with
    ``dequantize(their stored rows)`` (sentence-transformers' rescoring), ties by position."""
    scores = np.empty(candidates.indices.shape, dtype=np.float32)
    rows = np.unique(candidates.indices)
    if rows.size * queries.shape[1] * 4 <= RESCORE_DEQUANTIZED_BYTES and rows.size < candidates.indices.size:
        # Candidates shared between queries are dequantized once (dequantizing is row-wise, so
        # each row's values, and so every score, are the same as dequantizing per query).
        values, where = dequantize(docs[rows]), np.searchsorted(rows, candidates.indices)
        for row in range(len(candidates.indices)):
            scores[row] = values[where[row]] @ queries[row]
    else:
        for row, cand in enumerate(candidates.indices):
            scores[row] = dequantize(docs[cand]) @ queries[row]
    s, i = top_k(scores, candidates.indices, k)
    return Hits(indices=i, scores=s)


# --------------------------------------------------------------------------- indexes


@dataclass
class Index:
    """One (dimension, precision) index over a corpus, built once, queried many times."""

    precision: Precision
    dim: int
    vectors: np.ndarray  # the stored rows, as the precision's codec stores them
    rescore_multiplier: int = 0  # rescoring precisions: candidates = k * this
    ranges: tf.Ranges | None = field(default=None, repr=False)  # calibrated precisions
    calibration_size: int = 0  # vectors the ranges were fitted on

    @property
    def nbytes(self) -> int:
        """Bytes of the stored rows plus the calibration ranges the queries need."""
        return int(self.vectors.nbytes) + (self.ranges.nbytes if self.ranges is not None else 0)

    def transform_queries(self, queries: np.ndarray) -> np.ndarray:
        """What the first stage scores for raw queries: encoded like the documents, or float32."""
        if not self.precision.quantizes_query:
            return self.precision.prepare(queries, self.dim)
        return self.precision.store(queries, self.dim, self.ranges)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """Stored rows -> the values symmetric scoring multiplies."""
        return self.precision.codec.values(rows, self.dim, self.ranges)

    def dequantize(self, rows: np.ndarray) -> np.ndarray:
        """Stored rows -> float coordinates (what a float32 query is compared with)."""
        return self.precision.codec.dequantize(rows, self.dim, self.ranges)

    def search(self, queries: np.ndarray, k: int) -> Hits:
        """Top-k for raw (full-width, un-normalized) float32 query embeddings."""
        p = self.precision
        if not p.rescored:
            return KERNELS[p.scoring](self, queries, k)
        n_candidates = min(len(self.vectors), k * self.rescore_multiplier)
        candidates = KERNELS[p.scoring](self, queries, n_candidates)
        return rescore(p.prepare(queries, self.dim), self.vectors, candidates, self.dequantize, k)


def _inner(index: Index, queries: np.ndarray, k: int) -> Hits:
    """Unit float32 vectors on both sides: the cosine is the inner product (faiss where present)."""
    return search_dense(index.transform_queries(queries), index.vectors, k, cosine=False)


def _cosine(index: Index, queries: np.ndarray, k: int) -> Hits:
    codec = index.precision.codec
    compute = np.float32 if codec.exact_in_float32(index.dim) else np.float64
    return search_decoded(index.decode(index.transform_queries(queries)), index.vectors, k, index.decode,
                          cosine=True, compute=compute)  # fmt: skip


def _hamming(index: Index, queries: np.ndarray, k: int) -> Hits:
    return search_binary(index.transform_queries(queries), index.vectors, k)


def _asymmetric(index: Index, queries: np.ndarray, k: int) -> Hits:
    return search_decoded(index.transform_queries(queries), index.vectors, k, index.dequantize, cosine=False)


KERNELS = {Scoring.INNER: _inner, Scoring.COSINE: _cosine, Scoring.HAMMING: _hamming, Scoring.ASYMMETRIC: _asymmetric}


def fit_ranges(precision: Precision, source: np.ndarray, dim: int) -> tf.Ranges:
    """Per-dimension ranges of the prepared ``source`` rows, in one streaming pass (min and max
    are exact, so this equals fitting on the whole matrix at once)."""
    ranges = None
    for start, stop in store.chunks(len(source)):
        ranges = tf.widen(ranges, tf.fit_ranges(precision.prepare(source[start:stop], dim)))
    if ranges is None:
        raise ValueError("cannot fit quantization ranges on an empty calibration set")
    return ranges


def build_index(precision: str | Precision, docs: np.ndarray, dim: int, rescore_multiplier: int = 4,
                calibration: np.ndarray | None = None, folder: Path | None = None) -> Index:  # fmt: skip
    """Store raw corpus embeddings as ``precision`` at ``dim``, chunk by chunk: into memory, or
    (with ``folder``) into a memory-mapped file, through the same per-chunk function.

    ``calibration``: raw vectors the ranges of calibrated precisions are fitted on (default: the
    corpus itself)."""
    p = precisions.get(precision)
    source = docs if calibration is None else calibration
    ranges = fit_ranges(p, source, dim) if p.codec.calibrated else None
    shape = (len(docs), p.codec.width(dim))
    path = Path(folder) / f"{p.name}-{dim}.npy" if folder is not None else None
    vectors = store.fill_rows(shape, p.codec.dtype, lambda a, b: p.store(docs[a:b], dim, ranges), path)
    return Index(p, dim, vectors, rescore_multiplier if p.rescored else 0, ranges,
                 len(source) if ranges is not None else 0)  # fmt: skip
