"""Pure functions from cached float32 embeddings to what an index stores.

Definitions (the docs repeat them):

- MRL truncation keeps the first ``d`` dimensions.
- ``float32`` / ``float16``: the truncated vector is re-normalized to unit length and stored in
  that dtype; scored by cosine similarity.
- ``int8``: per-dimension min/max scalar quantization. The ranges are fitted on the (truncated,
  re-normalized) corpus embeddings only and applied unchanged to the queries, as
  sentence-transformers' ``quantize_embeddings`` does with calibration embeddings; values are
  rounded and clipped to [-128, 127]. Scored by cosine similarity of the int8 vectors.
- ``int8-tanh``: ``round(127 * tanh(x))`` of the truncated, *un-normalized* vector, clipped to
  [-128, 127]: pplx-embed-v1's native int8 output, compared by cosine similarity.
- ``binary``: one bit per dimension, 1 where ``x >= 0``, packed 8 per byte; Hamming distance.
- ``binary-rescore``: the binary index returns ``k * m`` candidates, re-ranked by the float32
  query (truncated, normalized) against the candidates' +-1 vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import InputError


def truncate(x: np.ndarray, dim: int) -> np.ndarray:
    """Keep the first ``dim`` dimensions (Matryoshka truncation)."""
    if not 1 <= dim <= x.shape[1]:
        raise InputError(f"dimension {dim} is outside 1..{x.shape[1]} for these embeddings")
    return x[:, :dim]


def normalize(x: np.ndarray) -> np.ndarray:
    """Scale rows to unit L2 norm (zero rows stay zero); float32 result."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Int8Ranges:
    """Per-dimension quantization ranges fitted on a corpus."""

    low: np.ndarray  # (dim,) float32
    high: np.ndarray  # (dim,) float32


def fit_int8(corpus: np.ndarray) -> Int8Ranges:
    """Fit min/max ranges per dimension on corpus embeddings."""
    corpus = np.asarray(corpus, dtype=np.float32)
    return Int8Ranges(low=corpus.min(axis=0), high=corpus.max(axis=0))


def quantize_int8(x: np.ndarray, ranges: Int8Ranges) -> np.ndarray:
    """Map ``[low, high]`` per dimension onto the 256 int8 levels; out-of-range values clip."""
    steps = (ranges.high - ranges.low) / 255.0
    steps = np.where(steps > 0, steps, 1.0).astype(np.float32)
    levels = np.rint((np.asarray(x, dtype=np.float32) - ranges.low) / steps) - 128.0
    return np.clip(levels, -128, 127).astype(np.int8)


def int8_tanh(x: np.ndarray) -> np.ndarray:
    """pplx-embed-v1's int8: ``round(127 * tanh(x))`` clipped to [-128, 127] (never truncated)."""
    levels = np.rint(127.0 * np.tanh(np.asarray(x, dtype=np.float32)))
    return np.clip(levels, -128, 127).astype(np.int8)


def binarize(x: np.ndarray) -> np.ndarray:
    """Sign bits (1 where ``x >= 0``), packed big-endian 8 per byte: shape (n, ceil(d / 8))."""
    return np.packbits(np.asarray(x) >= 0, axis=1)


def unpack_signs(packed: np.ndarray, dim: int) -> np.ndarray:
    """The +-1 float32 vectors behind packed sign bits."""
    bits = np.unpackbits(packed, axis=1, count=dim)
    return bits.astype(np.float32) * 2.0 - 1.0
