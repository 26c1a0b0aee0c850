"""Exact top-k search over float, int8 and packed-binary indexes, with optional rescoring.

Every search streams the corpus in chunks and the queries in blocks, so extra memory is bounded
by ``query_block * doc_chunk`` scores plus one converted chunk, whatever the corpus size. Ties are
broken by document position (lower first), so results are deterministic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from bench import transforms as tf
from bench.types import Precision

try:  # faiss's BLAS and SIMD popcount beat NumPy here; it is the engine where it is installed
    import faiss
except ImportError:  # pragma: no cover - faiss-cpu is a dependency; NumPy is the fallback
    faiss = None

# "faiss" or "numpy"; $BENCH_SEARCH_ENGINE=numpy forces the pure NumPy kernels.
ENGINE = os.environ.get("BENCH_SEARCH_ENGINE", "faiss" if faiss is not None else "numpy")
QUERY_BLOCK = 256
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
        queries = np.ascontiguousarray(queries, np.float32)

        def run(q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return faiss.knn(q, docs, kk, faiss.METRIC_INNER_PRODUCT)

        return _faiss_exact(run, queries, len(docs), k)
    return _dense_numpy(queries, docs, k, cosine)


def _dense_numpy(queries: np.ndarray, docs: np.ndarray, k: int, cosine: bool) -> Hits:
    wide = docs.dtype == np.int8 and docs.shape[1] * 128 * 128 >= _EXACT_FLOAT32_LIMIT
    compute = np.float64 if wide else np.float32
    q = queries.astype(compute)
    q_inv = _inverse_norms(q) if cosine else None

    def score_block(q0, q1, d0, d1):
        chunk = docs[d0:d1].astype(compute, copy=False)
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


def rescore(queries: np.ndarray, doc_bits: np.ndarray, candidates: Hits, dim: int, k: int) -> Hits:
    """Re-rank binary candidates by the float query against the candidates' +-1 vectors."""
    scores = np.empty(candidates.indices.shape, dtype=np.float32)
    for row, cand in enumerate(candidates.indices):
        scores[row] = tf.unpack_signs(doc_bits[cand], dim) @ queries[row]
    s, i = top_k(scores, candidates.indices, k)
    return Hits(indices=i, scores=s)


# --------------------------------------------------------------------------- indexes


@dataclass
class Index:
    """One (dimension, precision) index over a corpus, built once, queried many times."""

    precision: Precision
    dim: int
    vectors: np.ndarray  # what is stored: float32, float16, int8 or packed bits
    rescore_multiplier: int = 4
    ranges: tf.Int8Ranges | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes)

    def search(self, queries: np.ndarray, k: int) -> Hits:
        """Top-k for raw (full-width, un-normalized) float32 query embeddings."""
        q = tf.truncate(queries, self.dim)
        p = self.precision
        if p is Precision.INT8_TANH:
            return search_dense(tf.int8_tanh(q), self.vectors, k)
        q = tf.normalize(q)
        if p is Precision.FLOAT32:  # unit vectors on both sides: cosine is the inner product
            return search_dense(q, self.vectors, k, cosine=False)
        if p is Precision.FLOAT16:
            return search_dense(q.astype(np.float16), self.vectors, k)
        if p is Precision.INT8:
            return search_dense(tf.quantize_int8(q, self.ranges), self.vectors, k)
        if p is Precision.BINARY:
            return search_binary(tf.binarize(q), self.vectors, k)
        n_cand = min(len(self.vectors), k * self.rescore_multiplier)
        candidates = search_binary(tf.binarize(q), self.vectors, n_cand)
        return rescore(q, self.vectors, candidates, self.dim, k)


def build_index(precision: Precision, docs: np.ndarray, dim: int, rescore_multiplier: int = 4) -> Index:
    """Transform raw corpus embeddings into the stored form of ``precision`` at ``dim``."""
    x = tf.truncate(docs, dim)
    if precision is Precision.INT8_TANH:
        return Index(precision, dim, tf.int8_tanh(x))
    x = tf.normalize(x)
    if precision is Precision.FLOAT32:
        return Index(precision, dim, x)
    if precision is Precision.FLOAT16:
        return Index(precision, dim, x.astype(np.float16))
    if precision is Precision.INT8:
        ranges = tf.fit_int8(x)
        return Index(precision, dim, tf.quantize_int8(x, ranges), ranges=ranges)
    return Index(precision, dim, tf.binarize(x), rescore_multiplier=rescore_multiplier)
