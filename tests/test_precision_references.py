"""Every precision against the reference function it claims to equal, fed the raw input.

The references get the float vectors bench quantizes (truncated to d and re-normalized, computed
here with plain numpy from the raw embeddings), never bench's codes: sentence-transformers'
``quantize_embeddings`` / ``_dequantize_embeddings`` / ``semantic_search_faiss``, mteb's
``CompressionWrapper`` and the pplx-embed-v1 ``FlexibleQuantizer`` stand-in.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sentence_transformers.util.quantization import _dequantize_embeddings, quantize_embeddings

from bench import precisions, search
from bench import transforms as tf
from bench.search import build_index

SEEDS = [0, 1, 2]
DIMS = [384, 100, 37, 8]


def _raw(seed: int, n: int = 400, width: int = 384) -> np.ndarray:
    """Un-normalized embeddings with uneven per-dimension scales, like a real model's."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, width)) * rng.uniform(0.2, 3.0, width)).astype(np.float32)


def _prepared(raw: np.ndarray, dim: int) -> np.ndarray:
    """What bench quantizes, computed independently: the first ``dim`` values, unit length."""
    x = raw[:, :dim].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _mteb(level: str, embeddings: np.ndarray) -> np.ndarray:
    """mteb's CompressionWrapper quantization of one encode call's embeddings (no model needed)."""
    from mteb.models.compression_wrappers import CompressionWrapper
    from mteb.types import OutputDType

    wrapper = object.__new__(CompressionWrapper)  # its __init__ wants a model; the method does not
    wrapper._quantization_level, wrapper.clipping_margin, wrapper.min_embeds = OutputDType(level), None, 0
    return wrapper._quantize_embeddings(torch.from_numpy(embeddings)).numpy()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name", ["int8", "uint8"])
def test_scalar_8bit_codes_are_bit_identical_to_sentence_transformers(name, dim, seed):
    raw, queries = _raw(seed), _raw(seed + 100, n=50) * 1.5  # queries reach outside the corpus ranges
    corpus = _prepared(raw, dim)
    index = build_index(name, raw, dim)
    expected_docs = quantize_embeddings(corpus, precision=name, calibration_embeddings=corpus)
    expected_queries = quantize_embeddings(_prepared(queries, dim), precision=name, calibration_embeddings=corpus)
    assert index.vectors.dtype == expected_docs.dtype
    np.testing.assert_array_equal(index.vectors, expected_docs)
    np.testing.assert_array_equal(index.transform_queries(queries), expected_queries)


def test_the_old_rint_rounding_would_have_missed_about_half_the_codes():
    raw = _raw(0)
    corpus = _prepared(raw, 384)
    expected = quantize_embeddings(corpus, precision="int8", calibration_embeddings=corpus)
    low, high = corpus.min(0), corpus.max(0)
    rint = np.clip(np.rint((corpus - low) / ((high - low) / 255)) - 128, -128, 127).astype(np.int8)
    assert 0.4 < (rint != expected).mean() < 0.6  # the bug this precision's definition fixes


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dim", [384, 37])
@pytest.mark.parametrize("name", ["int8", "uint8", "int4", "uint4"])
def test_scalar_codes_equal_mtebs_compression_wrapper_on_the_corpus(name, dim, seed):
    raw = _raw(seed)
    index = build_index(name, raw, dim)
    # mteb calibrates on the embeddings of each call; given the corpus, its ranges are ours
    np.testing.assert_array_equal(index.decode(index.vectors), _mteb(name, _prepared(raw, dim)))


@pytest.mark.parametrize("name,level", [("float16", "float16"), ("bfloat16", "bfloat16"),
                                        ("float8-e4m3fn", "float8_e4m3fn"), ("float8-e5m2", "float8_e5m2")])  # fmt: skip
@pytest.mark.parametrize("dim", [384, 37])
def test_narrow_floats_hold_exactly_the_values_mteb_casts_to(name, level, dim):
    raw, queries = _raw(3), _raw(4, n=30)
    index = build_index(name, raw, dim)
    np.testing.assert_array_equal(index.decode(index.vectors), _mteb(level, _prepared(raw, dim)))
    np.testing.assert_array_equal(index.decode(index.transform_queries(queries)), _mteb(level, _prepared(queries, dim)))
    assert index.vectors.nbytes == len(raw) * precisions.get(name).bytes_per_vector(dim)


def _with_zeros(seed: int, dim: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((60, dim)).astype(np.float32)
    x[::3, ::5] = 0.0  # exact zeros: where the two sign rules part
    return x


def _flexible_quantizer(kind: str, x: np.ndarray) -> np.ndarray:
    from bench.testing import FlexibleQuantizer

    out = FlexibleQuantizer(kind).forward({"sentence_embedding": torch.from_numpy(x)})
    return out["sentence_embedding"].numpy()


@pytest.mark.parametrize("dim", [384, 37, 8])
def test_binary_bits_follow_pplx_x_ge_0_and_differ_from_sentence_transformers_only_at_zeros(dim):
    raw = _with_zeros(dim, dim)
    bits = build_index("binary", raw, dim).vectors
    signs = np.unpackbits(bits, axis=1, count=dim)
    # pplx: the stand-in's packed ubinary output, and its +-1 binary output, bit for bit
    if dim % 8 == 0:
        np.testing.assert_array_equal(bits, _flexible_quantizer("ubinary", raw[:, :dim]).astype(np.uint8))
    np.testing.assert_array_equal(signs * 2.0 - 1.0, _flexible_quantizer("binary", raw[:, :dim]))
    # sentence-transformers: x > 0, so exact zeros (and only they) become 0 there
    st_bits = np.unpackbits(quantize_embeddings(_prepared(raw, dim), precision="ubinary"), axis=1, count=dim)
    st_signed = np.unpackbits((quantize_embeddings(_prepared(raw, dim), precision="binary").astype(np.int16) + 128)
                              .astype(np.uint8), axis=1, count=dim)  # fmt: skip
    np.testing.assert_array_equal(st_bits, st_signed)
    np.testing.assert_array_equal(signs != st_bits, raw[:, :dim] == 0)
    assert (raw[:, :dim] == 0).any()


@pytest.mark.parametrize("name", ["binary", "binary-rescore"])
def test_binary_bits_are_the_raw_signs_where_normalizing_would_underflow_or_overflow(name):
    """-1e-44 / 100 underflows to -0.0 (which x >= 0 counts as 1), and a row of 3e19s has an
    infinite float32 norm: the bits come from the raw truncated rows, as pplx's quantizer's do."""
    raw = np.array([[100.0, -1e-44, 3.0, -2.0, 1e-45, -5.0, 0.0, 1.0],
                    [3e19, -3e19, 3e19, -3e19, 3e19, -3e19, 3e19, -3e19],
                    [-3e19, -3e19, 1e-40, -1e-40, 2.0, -2.0, -1e-45, 1.0]], np.float32)  # fmt: skip
    expected = _flexible_quantizer("ubinary", raw).astype(np.uint8)
    index = build_index(name, raw, 8, rescore_multiplier=2 if name.endswith("rescore") else 0)
    np.testing.assert_array_equal(index.vectors, expected)
    np.testing.assert_array_equal(index.transform_queries(raw), expected)


def test_normalizing_divides_by_the_norm_clamped_at_1e_12_as_torch_does():
    raw = np.array([[1e-14, 0, 0], [0, 0, 0], [3, 4, 0], [1e-13, -1e-13, 5e-13], [1e-6, 0, 0], [-2e-12, 0, 1e-12]],
                   np.float32)  # fmt: skip
    expected = torch.nn.functional.normalize(torch.from_numpy(raw), p=2, dim=1).numpy()
    np.testing.assert_allclose(tf.normalize(raw), expected, rtol=1e-6, atol=0)
    assert tf.normalize(raw)[0, 0] == pytest.approx(0.01, rel=1e-6)


def test_pplx_ubinary_ranks_exactly_as_binary_so_it_is_not_a_separate_cell():
    raw = _with_zeros(7, 64)
    queries = np.random.default_rng(8).standard_normal((12, 64)).astype(np.float32)
    ours = build_index("binary", raw, 64).search(queries, 60)
    docs, qs = _flexible_quantizer("binary", raw), _flexible_quantizer("binary", queries)
    cosine = qs @ docs.T / 64.0  # pplx's binary output scored by cosine (+-1 vectors have norm sqrt(64))
    order = np.lexsort((np.broadcast_to(np.arange(60), cosine.shape), -cosine), axis=-1)
    np.testing.assert_array_equal(ours.indices, order)


@pytest.mark.parametrize("dim", [384, 37])
def test_int8_rescoring_dequantizes_as_sentence_transformers_does(dim):
    raw, queries = _raw(5), _raw(6, n=20)
    index = build_index("int8-rescore", raw, dim, rescore_multiplier=4)
    corpus = _prepared(raw, dim)
    ranges = np.vstack([corpus.min(0), corpus.max(0)])
    expected = _dequantize_embeddings(quantize_embeddings(corpus, "int8", ranges=ranges).astype(int), "int8", ranges)
    np.testing.assert_allclose(index.dequantize(index.vectors), expected, rtol=1e-6, atol=1e-7)
    # the second stage: candidates of the int8 first stage, re-ranked by q . dequantized
    hits = index.search(queries, 10)
    first = search.search_dense(index.transform_queries(queries), index.vectors, 40)
    q = _prepared(queries, dim)
    for row in range(len(queries)):
        scores = expected[first.indices[row]] @ q[row]
        best = first.indices[row][np.lexsort((first.indices[row], -scores))][:10]
        np.testing.assert_array_equal(hits.indices[row], best)


def test_binary_rescore_equals_sentence_transformers_semantic_search_faiss_where_the_cut_is_untied():
    from sentence_transformers.util.quantization import semantic_search_faiss

    rng = np.random.default_rng(9)
    raw, queries = rng.standard_normal((300, 64)).astype(np.float32), rng.standard_normal((300, 64)).astype(np.float32)
    k, m, dim = 5, 4, 64
    docs, qs = _prepared(raw, dim), _prepared(queries, dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, _ = semantic_search_faiss(qs, corpus_embeddings=quantize_embeddings(docs, "ubinary"),
                                            corpus_precision="ubinary", top_k=k, rescore_multiplier=m)  # fmt: skip
    ours = build_index("binary-rescore", raw, dim, rescore_multiplier=m).search(queries, k)
    hamming = ((qs[:, None] > 0) != (docs[None] > 0)).sum(-1)
    cut = np.sort(hamming, axis=1)
    untied = np.flatnonzero(cut[:, k * m - 1] < cut[:, k * m])  # the candidate set is unique there
    assert len(untied) >= 20
    for row in untied:
        np.testing.assert_array_equal(ours.indices[row], [hit["corpus_id"] for hit in expected[row]])


@pytest.mark.parametrize("first,single", [("int8-rescore", "int8-asym"), ("binary-rescore", "binary-asym")])
def test_asymmetric_cells_equal_rescoring_that_keeps_every_document(first, single):
    raw, queries = _raw(10, n=150, width=48), _raw(11, n=15, width=48)
    whole = build_index(first, raw, 48, rescore_multiplier=len(raw)).search(queries, 20)
    asym = build_index(single, raw, 48).search(queries, 20)
    np.testing.assert_array_equal(asym.indices, whole.indices)
    np.testing.assert_allclose(asym.scores, whole.scores, rtol=1e-5)


def test_calibration_on_a_sample_uses_that_sample_s_ranges_as_sentence_transformers_would():
    raw, sample = _raw(12), _raw(12)[::10]
    index = build_index("int8", raw, 100, calibration=sample)
    expected = quantize_embeddings(_prepared(raw, 100), "int8", calibration_embeddings=_prepared(sample, 100))
    np.testing.assert_array_equal(index.vectors, expected)
    assert index.calibration_size == len(sample)
    assert not np.array_equal(index.vectors, build_index("int8", raw, 100).vectors)  # it matters
