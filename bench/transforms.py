"""Pure functions from cached float32 embeddings to what an index stores, and back.

Each precision in ``bench.precisions`` is assembled from these; the definitions (and the
reference functions each one is tested against) are listed there and in the README.

- MRL truncation keeps the first ``d`` dimensions; most precisions re-normalize the result.
- Scalar quantization (``int8``, ``uint8``, ``int4``, ``uint4``) follows sentence-transformers'
  ``quantize_embeddings`` operation for operation: per-dimension ``[low, high]`` ranges fitted on
  a calibration set (the corpus by default), ``floor((x - low) / step)`` with
  ``step = (high - low) / (levels - 1)``, clipped to ``[0, levels - 1]``; signed variants subtract
  half the levels. Everything runs in float32, as there, so the codes are bit-identical.
- Sign bits: 1 where ``x >= 0`` (pplx-embed-v1's rule), packed big-endian 8 per byte.
- Floating casts (float16, bfloat16, fp8) round to nearest even, as numpy, ml_dtypes and torch do.
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


NORM_EPS = np.float32(1e-12)  # torch.nn.functional.normalize's default eps


def normalize(x: np.ndarray) -> np.ndarray:
    """Scale rows to unit L2 norm, dividing by ``max(norm, 1e-12)`` as torch's
    ``F.normalize`` does for sentence-transformers and mteb (zero rows stay zero; a row whose
    norm is below 1e-12 stays short of unit length there, so it does here); float32 result."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, NORM_EPS)


# --------------------------------------------------------------------------- scalar quantization


@dataclass(frozen=True)
class Ranges:
    """Per-dimension quantization ranges fitted on a calibration set (float32, shape (dim,))."""

    low: np.ndarray
    high: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.low.nbytes + self.high.nbytes)



def fit_ranges(x: np.ndarray) -> Ranges:
    """Min/max per dimension (what sentence-transformers' ``_get_quantization_ranges`` computes)."""
    x = np.asarray(x, dtype=np.float32)
    return Ranges(low=x.min(axis=0), high=x.max(axis=0))



def widen(a: Ranges | None, b: Ranges) -> Ranges:
    """The ranges of two row sets together: min/max are exact, so chunked fitting equals one pass."""
    if a is None:
        return b
    return Ranges(low=np.minimum(a.low, b.low), high=np.maximum(a.high, b.high))


def _steps(ranges: Ranges, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, steps) in float32; a constant dimension gets step 1, as sentence-transformers does."""
    starts = ranges.low.astype(np.float32, copy=False)
    steps = (ranges.high.astype(np.float32, copy=False) - starts) / (levels - 1)
    return starts, np.where(steps == 0, 1, steps)


def scalar_levels(x: np.ndarray, ranges: Ranges, levels: int) -> np.ndarray:
    """Unsigned level per value, ``0 .. levels - 1`` (float32 holding integers)."""
    starts, steps = _steps(ranges, levels)
    return np.clip(np.floor((np.asarray(x, dtype=np.float32) - starts) / steps), 0, levels - 1)


def quantize_int8(x: np.ndarray, ranges: Ranges) -> np.ndarray:
    """sentence-transformers' ``quantize_embeddings(x, "int8", ranges)``: levels minus 128."""
    return (scalar_levels(x, ranges, 256) - 128).astype(np.int8)


def quantize_uint8(x: np.ndarray, ranges: Ranges) -> np.ndarray:
    """sentence-transformers' ``quantize_embeddings(x, "uint8", ranges)``."""
    return scalar_levels(x, ranges, 256).astype(np.uint8)


def quantize_uint4(x: np.ndarray, ranges: Ranges) -> np.ndarray:
    """16 levels per value (``0 .. 15``), one per uint8 (``pack_nibbles`` stores two per byte)."""
    return scalar_levels(x, ranges, 16).astype(np.uint8)


def dequantize_levels(levels: np.ndarray, ranges: Ranges, n_levels: int) -> np.ndarray:
    """Back to the float coordinates: ``level * step + low`` (sentence-transformers'
    ``_dequantize_embeddings``, computed in float64 as there), returned as float32."""
    starts, steps = _steps(ranges, n_levels)
    return (np.asarray(levels, dtype=np.float64) * steps + starts).astype(np.float32)


def pack_nibbles(levels: np.ndarray) -> np.ndarray:
    """Two 4-bit levels per byte, the first in the high nibble: shape (n, ceil(d / 2))."""
    levels = np.asarray(levels, dtype=np.uint8)
    if levels.shape[1] % 2:
        levels = np.concatenate([levels, np.zeros((len(levels), 1), np.uint8)], axis=1)
    return (levels[:, 0::2] << 4) | levels[:, 1::2]


def unpack_nibbles(packed: np.ndarray, dim: int) -> np.ndarray:
    """The ``dim`` 4-bit levels behind ``pack_nibbles`` (uint8, 0..15)."""
    packed = np.asarray(packed, dtype=np.uint8)
    out = np.empty((len(packed), 2 * packed.shape[1]), np.uint8)
    out[:, 0::2], out[:, 1::2] = packed >> 4, packed & 0x0F
    return out[:, :dim]


# --------------------------------------------------------------------------- other codes


def int8_tanh(x: np.ndarray) -> np.ndarray:
    """pplx-embed-v1's int8: ``round(127 * tanh(x))`` clipped to [-128, 127] (never truncated).

    The steps are torch's in float32: tanh correctly rounded to float32 (computed in float64 and
    cast; NumPy's own float32 tanh can be one unit in the last place off, which moves a code by
    one where ``127 * tanh(x)`` lies next to a .5 boundary), the product by 127 in float32, then
    round half to even."""
    tanh = np.tanh(np.asarray(x, dtype=np.float32).astype(np.float64)).astype(np.float32)
    levels = np.rint(np.float32(127) * tanh)
    return np.clip(levels, -128, 127).astype(np.int8)


def binarize(x: np.ndarray) -> np.ndarray:
    """Sign bits (1 where ``x >= 0``, pplx-embed-v1's rule), packed big-endian 8 per byte:
    shape (n, ceil(d / 8)). sentence-transformers' ``quantize_embeddings`` uses ``x > 0``; the
    two differ only on exact zeros."""
    return np.packbits(np.asarray(x) >= 0, axis=1)


def unpack_signs(packed: np.ndarray, dim: int) -> np.ndarray:
    """The +-1 float32 vectors behind packed sign bits."""
    bits = np.unpackbits(packed, axis=1, count=dim)
    return bits.astype(np.float32) * 2.0 - 1.0


def cast(x: np.ndarray, dtype) -> np.ndarray:
    """Round float32 values to ``dtype`` (float16, or an ml_dtypes type: bfloat16, float8_*)."""
    return np.asarray(x, dtype=np.float32).astype(dtype)


def upcast(x: np.ndarray) -> np.ndarray:
    """The float32 values a narrow float type holds (exact: every such value is a float32)."""
    return np.asarray(x).astype(np.float32)
