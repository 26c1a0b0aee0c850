"""Exact top-k search over float, int8 and packed-binary indexes, with optional rescoring.

Every search streams the corpus in chunks and the queries in blocks, so extra memory is bounded
by ``query_block * doc_chunk`` scores plus one converted chunk, whatever the corpus size. Ties are
broken by document position (lower first), so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench import transforms as tf
from bench.types import Precision

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


def _merge(best: tuple[np.ndarray, np.ndarray] | None, scores, indices, k):
    if best is not None:
        scores = np.concatenate([best[0], scores], axis=1)
        indices = np.concatenate([best[1], indices], axis=1)
    return top_k(scores, indices, k)


def _scan(n_docs: int, n_queries: int, k: int, score_block) -> Hits:
    """Drive ``score_block(q0, q1, d0, d1) -> scores`` over blocks; keep the running top-k."""
    all_s, all_i = [], []
    for q0 in range(0, n_queries, QUERY_BLOCK):
        q1 = min(q0 + QUERY_BLOCK, n_queries)
        best = None
        for d0 in range(0, n_docs, DOC_CHUNK):
            d1 = min(d0 + DOC_CHUNK, n_docs)
            scores = score_block(q0, q1, d0, d1)
            idx = np.broadcast_to(np.arange(d0, d1, dtype=np.int64), scores.shape)
            best = _merge(best, scores, idx, k)
        all_s.append(best[0])
        all_i.append(best[1])
    return Hits(indices=np.concatenate(all_i), scores=np.concatenate(all_s).astype(np.float32))


def search_dense(queries: np.ndarray, docs: np.ndarray, k: int, cosine: bool = True) -> Hits:
    """Exact inner-product (or cosine) top-k over float32/float16/int8 vectors."""
    wide = docs.dtype == np.int8 and docs.shape[1] * 128 * 128 >= _EXACT_FLOAT32_LIMIT
    compute = np.float64 if wide else np.float32
    q = queries.astype(compute)
    q_inv = _inverse_norms(q) if cosine else None

    def score_block(q0, q1, d0, d1):
        chunk = docs[d0:d1].astype(compute)
        scores = q[q0:q1] @ chunk.T
        if cosine:
            scores *= q_inv[q0:q1, None]
            scores *= _inverse_norms(chunk)[None, :]
        return scores.astype(np.float32, copy=False)

    return _scan(len(docs), len(queries), k, score_block)


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
        if p in (Precision.FLOAT32, Precision.FLOAT16):
            return search_dense(q.astype(self.vectors.dtype), self.vectors, k)
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
