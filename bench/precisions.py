"""Every precision of the sweep, one registered strategy each.

A precision says how a document vector is stored (its ``Codec``), how the query is transformed
(encoded by the same codec, or kept in float32), how a (query, document) pair is scored
(``Scoring``), whether a second stage re-ranks candidates, its bytes per vector, and the
reference function it must equal (tested in ``tests/test_precision_references.py``). Search and
storage only read these fields: adding a precision is one ``register(...)`` call in this file.

Two decodings exist because scoring uses two spaces: ``values`` are what symmetric scoring
multiplies (the integer codes themselves, the narrow floats upcast, +-1 for bits), ``dequantize``
maps stored codes back to the float coordinates a float32 query is compared with (asymmetric
scoring and rescoring, as sentence-transformers' ``_dequantize_embeddings`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

import ml_dtypes
import numpy as np

from bench import transforms as tf
from bench.errors import InputError, unknown

Encode = Callable[[np.ndarray, "tf.Ranges | None"], np.ndarray]
Decode = Callable[[np.ndarray, int, "tf.Ranges | None"], np.ndarray]


class Scoring(str, Enum):
    """How a query is scored against a stored document (the kernels live in ``bench.search``)."""

    INNER = "inner product"  # unit float32 vectors on both sides: the cosine, through faiss
    COSINE = "cosine"  # cosine of the decoded values, query encoded like the documents
    HAMMING = "hamming"  # XOR + popcount of sign bits (ranks as the cosine of the +-1 vectors)
    ASYMMETRIC = "float32 query x dequantized document"  # inner product, no query quantization


@dataclass(frozen=True)
class Codec:
    """How vectors are stored: encode prepared float32 rows, decode them back."""

    dtype: np.dtype  # of the stored array
    width: Callable[[int], int]  # stored columns at ``dim`` dimensions
    encode: Encode
    values: Decode  # stored rows -> the values symmetric scoring multiplies
    dequantize: Decode | None = None  # stored rows -> float coordinates (asymmetric, rescoring)
    calibrated: bool = False  # needs per-dimension ranges fitted on a calibration set
    max_abs: float = 0.0  # largest |value| of integer codes (0: float values)
    # Codes that depend on the signs alone take the truncated raw rows: normalizing first could
    # only change them, where a tiny value underflows to -0.0 or a huge row's norm overflows.
    signs_only: bool = False

    def exact_in_float32(self, dim: int) -> bool:
        """Integer dot products stay exact in float32 below 2**24; float values are float32 anyway."""
        return self.max_abs == 0.0 or dim * self.max_abs**2 < 2**24


@dataclass(frozen=True)
class Precision:
    """One precision of the sweep: storage, query transform, scoring and its reference."""

    name: str
    codec: Codec
    scoring: Scoring
    stored: str  # what one stored vector is, for the README table
    how: str  # how it is made
    reference: str  # the function it must equal
    rescored: bool = False  # second stage: float32 query against dequantized candidates
    normalized: bool = True  # re-normalize after truncation (False: the raw vector, int8-tanh)
    sign_rule: str = ""  # for sign bits: which values become 1
    # Which vectors it takes: "float" (raw embeddings), "int8" (codes a model or API already
    # quantized), "binary" (+-1 signs). Quantizing codes again would score something else.
    inputs: tuple[str, ...] = ("float",)

    def bytes_per_vector(self, dim: int) -> int:
        """Bytes one stored document vector takes at ``dim`` dimensions (an integer)."""
        return int(self.codec.width(dim) * np.dtype(self.codec.dtype).itemsize)

    def prepare(self, raw: np.ndarray, dim: int) -> np.ndarray:
        """Truncate raw embeddings to ``dim`` and (unless the precision says not) normalize."""
        x = tf.truncate(np.asarray(raw, dtype=np.float32), dim)
        return tf.normalize(x) if self.normalized else np.asarray(x, dtype=np.float32)

    def store(self, raw: np.ndarray, dim: int, ranges: tf.Ranges | None) -> np.ndarray:
        """Raw rows -> stored rows (corpus chunk by chunk, in memory or on disk; quantized queries)."""
        if self.codec.signs_only:
            return self.codec.encode(tf.truncate(np.asarray(raw, dtype=np.float32), dim), ranges)
        return self.codec.encode(self.prepare(raw, dim), ranges)

    @property
    def quantizes_query(self) -> bool:
        """Symmetric first stages score the query in the documents' own code."""
        return self.scoring is not Scoring.ASYMMETRIC


PRECISIONS: dict[str, Precision] = {}


def register(precision: Precision) -> Precision:
    if precision.name in PRECISIONS:
        raise ValueError(f"precision {precision.name!r} is registered twice")
    PRECISIONS[precision.name] = precision
    return precision


def get(name: str) -> Precision:
    """The registered precision of that name (an ``InputError`` with suggestions otherwise)."""
    if isinstance(name, Precision):
        return name
    if name not in PRECISIONS:
        raise unknown("precision", str(name), list(PRECISIONS))
    return PRECISIONS[name]


def names() -> list[str]:
    """Registered names, in table order."""
    return list(PRECISIONS)


def check_input(precision: str, kind: str, backend: str) -> None:
    """Refuse a precision that cannot take a backend's vectors, with why and what to use."""
    p = get(precision)
    if kind in p.inputs:
        return
    fits = [q.name for q in PRECISIONS.values() if kind in q.inputs]
    if kind == "float":
        raise InputError(f"precision {precision} scores vectors a backend returns already quantized; backend "
                         f"{backend} returns float vectors (use {', '.join(fits[:4])}, ...)")  # fmt: skip
    raise InputError(f"precision {precision} would quantize again the {kind} vectors backend {backend} returns "
                     f"as they are; use {' or '.join(fits)} (native-{kind} is the model's own output), "
                     "or ask the server for float vectors")  # fmt: skip


def parse(value: object, where: str) -> str:
    """A precision name from a config value; one clear line naming ``where`` otherwise."""
    if not isinstance(value, str) or value not in PRECISIONS:
        raise InputError(f"{where}: {unknown('precision', str(value), names())}")
    return value


# --------------------------------------------------------------------------- codecs


def _same(d: int) -> int:
    return d


def _float_codec(dtype) -> Codec:
    """Narrow floats: stored rounded, decoded by upcasting (exact), in both scoring spaces.

    ml_dtypes types (bfloat16, fp8) are stored as their raw bits (uint16/uint8): a ``.npy`` file
    cannot record those dtypes, so a memory-mapped index would read back as opaque bytes."""
    dtype = np.dtype(dtype)
    storage = dtype if dtype == np.float16 else np.dtype(f"u{dtype.itemsize}")

    def encode(x: np.ndarray, ranges) -> np.ndarray:
        return tf.cast(x, dtype).view(storage)

    def values(stored: np.ndarray, dim: int, ranges) -> np.ndarray:
        return tf.upcast(np.asarray(stored).view(dtype))

    return Codec(storage, _same, encode, values, values)


def _scalar_codec(levels: int, signed: bool) -> Codec:
    """Calibrated scalar quantization to ``levels`` levels; signed codes are ``level - levels / 2``.

    8-bit codes take one byte each (int8 holds the signed code, uint8 the level); 4-bit codes store
    the level two per byte, and the signed variant subtracts 8 when decoding."""
    offset = levels // 2 if signed else 0
    packed = levels == 16

    def encode(x: np.ndarray, ranges: tf.Ranges) -> np.ndarray:
        if packed:
            return tf.pack_nibbles(tf.quantize_uint4(x, ranges))
        return tf.quantize_int8(x, ranges) if signed else tf.quantize_uint8(x, ranges)

    def level_of(stored: np.ndarray, dim: int) -> np.ndarray:
        if packed:
            return tf.unpack_nibbles(stored, dim).astype(np.int16)
        return np.asarray(stored).astype(np.int16) + offset

    def values(stored: np.ndarray, dim: int, ranges) -> np.ndarray:
        return (level_of(stored, dim) - offset).astype(np.float32)

    def dequantize(stored: np.ndarray, dim: int, ranges: tf.Ranges) -> np.ndarray:
        return tf.dequantize_levels(level_of(stored, dim), ranges, levels)

    dtype = np.dtype(np.int8 if signed and not packed else np.uint8)
    width = (lambda d: (d + 1) // 2) if packed else _same
    return Codec(dtype, width, encode, values, dequantize, calibrated=True,
                 max_abs=float(max(offset, levels - 1 - offset)))  # fmt: skip


def _codes(stored: np.ndarray, dim: int, ranges) -> np.ndarray:
    return np.asarray(stored, np.float32)


def _signs(stored: np.ndarray, dim: int, ranges) -> np.ndarray:
    return tf.unpack_signs(stored, dim)


def _as_codes(x: np.ndarray, ranges) -> np.ndarray:
    """int8 codes that arrived as such (float32 holding integers), stored as they are."""
    codes = np.rint(x)
    if not np.array_equal(codes, x) or codes.min(initial=0) < -128 or codes.max(initial=0) > 127:
        raise InputError("native-int8: the vectors are not int8 codes (non-integer or out-of-range values)")
    return codes.astype(np.int8)


FLOAT32 = Codec(np.dtype(np.float32), _same, lambda x, r: np.asarray(x, np.float32), _codes, _codes)
INT8 = _scalar_codec(256, signed=True)
UINT8 = _scalar_codec(256, signed=False)
INT4 = _scalar_codec(16, signed=True)
UINT4 = _scalar_codec(16, signed=False)
TANH8 = Codec(np.dtype(np.int8), _same, lambda x, r: tf.int8_tanh(x), _codes, max_abs=128.0)
SIGNS = Codec(np.dtype(np.uint8), lambda d: (d + 7) // 8, lambda x, r: tf.binarize(x), _signs, _signs,
              signs_only=True)
CODES = Codec(np.dtype(np.int8), _same, _as_codes, _codes, max_abs=128.0)
ANY = ("float", "int8", "binary")  # the float precisions score codes and signs as they are

PPLX_SIGNS = "x >= 0 -> 1 (pplx-embed-v1's FlexibleQuantizer); sentence-transformers' x > 0 differs only on exact zeros"
ST_INT8 = 'sentence-transformers quantize_embeddings(x, "{0}", calibration_embeddings=corpus), bit-identical'
MTEB_CAST = "mteb CompressionWrapper {0}: values equal its cast (it upcasts the same way, then cosine)"
MTEB_INT4 = "mteb CompressionWrapper {0} levels (there calibrated per encode call; here on the corpus)"
CALIBRATED = "truncate, re-normalize; per-dimension min/max ranges fitted on the calibration set (the corpus by default) and applied unchanged to queries; floor((x - low) / step)"

# --------------------------------------------------------------------------- the registry

register(Precision(
    "float32", FLOAT32, Scoring.INNER, "float32", "truncate to d, re-normalize",
    "mteb.evaluate on the same vectors (tests/test_mteb_parity.py, every metric within 1e-5)", inputs=ANY))
register(Precision(
    "float16", _float_codec(np.float16), Scoring.COSINE, "float16", "truncate, re-normalize, round to float16",
    MTEB_CAST.format("float16"), inputs=ANY))
register(Precision(
    "bfloat16", _float_codec(ml_dtypes.bfloat16), Scoring.COSINE, "bfloat16",
    "truncate, re-normalize, round to bfloat16 (ml_dtypes)", MTEB_CAST.format("bfloat16")))
register(Precision(
    "float8-e4m3fn", _float_codec(ml_dtypes.float8_e4m3fn), Scoring.COSINE, "fp8 e4m3fn",
    "truncate, re-normalize, round to fp8 e4m3fn (ml_dtypes)", MTEB_CAST.format("float8_e4m3fn")))
register(Precision(
    "float8-e5m2", _float_codec(ml_dtypes.float8_e5m2), Scoring.COSINE, "fp8 e5m2",
    "truncate, re-normalize, round to fp8 e5m2 (ml_dtypes)", MTEB_CAST.format("float8_e5m2")))
register(Precision(
    "int8", INT8, Scoring.COSINE, "int8", f"{CALIBRATED}, 256 levels minus 128", ST_INT8.format("int8")))
register(Precision(
    "int8-asym", INT8, Scoring.ASYMMETRIC, "int8",
    "as int8; the float32 query (not quantized) against every dequantized document, one stage",
    "int8-rescore with m large enough to keep every document (tested)"))
register(Precision(
    "int8-rescore", INT8, Scoring.COSINE, "int8",
    "as int8; the top_k x m candidates re-ranked by the float32 query against their dequantized vectors",
    "sentence-transformers' rescoring: _dequantize_embeddings, then the float query's inner product",
    rescored=True))
register(Precision(
    "uint8", UINT8, Scoring.COSINE, "uint8", f"{CALIBRATED}, 256 levels", ST_INT8.format("uint8")))
register(Precision(
    "int4", INT4, Scoring.COSINE, "2 x 4 bits per byte", f"{CALIBRATED}, 16 levels minus 8",
    MTEB_INT4.format("int4")))
register(Precision(
    "uint4", UINT4, Scoring.COSINE, "2 x 4 bits per byte", f"{CALIBRATED}, 16 levels", MTEB_INT4.format("uint4")))
register(Precision(
    "int8-tanh", TANH8, Scoring.COSINE, "int8",
    "round(127 * tanh(x)) of the truncated, un-normalized vector, clipped to [-128, 127]",
    "pplx-embed-v1's native int8 (FlexibleQuantizer stand-in in bench.testing)", normalized=False))
register(Precision(
    "binary", SIGNS, Scoring.HAMMING, "packed bits", "sign bit of the truncated vector, 8 per byte",
    "pplx-embed-v1's native binary and ubinary (FlexibleQuantizer stand-in); sentence-transformers "
    "binary/ubinary bits except on exact zeros", sign_rule=PPLX_SIGNS))
register(Precision(
    "binary-asym", SIGNS, Scoring.ASYMMETRIC, "packed bits",
    "as binary; the float32 query (not quantized) against every document's +-1 vector, one stage",
    "binary-rescore with m large enough to keep every document (tested)", sign_rule=PPLX_SIGNS))
register(Precision(
    "binary-rescore", SIGNS, Scoring.HAMMING, "packed bits",
    "as binary; the top_k x m Hamming candidates re-ranked by the float32 query against their +-1 vectors",
    "sentence-transformers semantic_search_faiss(corpus_precision='ubinary', rescore=True) where the "
    "candidate cut is untied", rescored=True, sign_rule=PPLX_SIGNS))
register(Precision(
    "native-int8", CODES, Scoring.COSINE, "int8",
    "the int8 codes a model or API returned (pplx-embed-v1's own output), truncated to d, stored as they are",
    "cosine over the returned codes (tests/test_identity.py, against a fake Perplexity API)",
    normalized=False, inputs=("int8",)))
register(Precision(
    "native-binary", SIGNS, Scoring.HAMMING, "packed bits",
    "the +-1 signs a model or API returned (base64_binary), truncated to d, packed 8 per byte",
    "Hamming distance over the returned bits (tests/test_identity.py, against a fake Perplexity API)",
    normalized=False, inputs=("binary",), sign_rule=PPLX_SIGNS))
