import numpy as np
import pytest

from bench import precisions, search
from bench import transforms as tf
from bench.testing import vectors_for


def _brute(scores: np.ndarray, k: int) -> np.ndarray:
    idx = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((idx, -scores), axis=-1)[:, :k]


@pytest.fixture
def small_chunks(monkeypatch):
    """Force many query blocks and corpus chunks so the streaming merge is exercised."""
    monkeypatch.setattr(search, "QUERY_BLOCK", 7)
    monkeypatch.setattr(search, "DOC_CHUNK", 13)


def test_dense_search_equals_brute_force_across_chunks(small_chunks):
    rng = np.random.default_rng(1)
    docs = tf.normalize(rng.standard_normal((200, 24)))
    queries = tf.normalize(rng.standard_normal((30, 24)))
    hits = search.search_dense(queries, docs, 25)
    np.testing.assert_array_equal(hits.indices, _brute(queries @ docs.T, 25))


def test_ties_are_broken_by_lower_document_position(small_chunks):
    docs = np.ones((50, 4), np.float32)  # every document scores the same
    hits = search.search_dense(np.ones((3, 4), np.float32), docs, 10)
    np.testing.assert_array_equal(hits.indices, np.tile(np.arange(10), (3, 1)))


def test_int8_search_uses_cosine_of_integer_vectors():
    docs = np.array([[10, 0], [100, 100], [-5, 5]], np.int8)
    hits = search.search_dense(np.array([[1, 1]], np.int8), docs, 3)
    np.testing.assert_array_equal(hits.indices[0], [1, 0, 2])
    np.testing.assert_allclose(hits.scores[0], [1.0, np.sqrt(0.5), 0.0], atol=1e-6)


def test_hamming_ranking_equals_brute_force_on_unpacked_bits(small_chunks):
    rng = np.random.default_rng(2)
    for dim in (64, 40):  # word-aligned and not
        docs = tf.binarize(rng.standard_normal((120, dim)))
        queries = tf.binarize(rng.standard_normal((9, dim)))
        bits_d = np.unpackbits(docs, axis=1, count=dim).astype(int)
        bits_q = np.unpackbits(queries, axis=1, count=dim).astype(int)
        distance = (bits_q[:, None, :] != bits_d[None, :, :]).sum(-1)
        np.testing.assert_array_equal(search.hamming(queries, docs), distance)
        hits = search.search_binary(queries, docs, 30)
        np.testing.assert_array_equal(hits.indices, _brute(-distance.astype(float), 30))


def test_rescore_reranks_candidates_by_float_query_against_sign_vectors():
    rng = np.random.default_rng(3)
    raw = rng.standard_normal((300, 32)).astype(np.float32)
    query = rng.standard_normal((1, 32)).astype(np.float32)
    index = search.build_index("binary-rescore", raw, 32, rescore_multiplier=4)
    hits = index.search(query, 10)
    q = tf.normalize(query)
    candidates = search.search_binary(tf.binarize(q), index.vectors, 40).indices[0]
    signs = np.where(raw[candidates] >= 0, 1.0, -1.0)
    expected = candidates[np.lexsort((candidates, -(signs @ q[0])))][:10]
    np.testing.assert_array_equal(hits.indices[0], expected)


@pytest.mark.parametrize("precision", precisions.names())
def test_every_precision_finds_an_exact_duplicate_first(precision):
    rng = np.random.default_rng(4)
    docs = vectors_for(precision, rng.standard_normal((100, 48)).astype(np.float32))
    index = search.build_index(precision, docs, 32)
    hits = index.search(docs[[5, 17, 60]], 5)
    np.testing.assert_array_equal(hits.indices[:, 0], [5, 17, 60])
    assert index.vectors.nbytes == precisions.get(precision).bytes_per_vector(32) * 100


@pytest.mark.parametrize("engine", ["numpy", "faiss"])
def test_both_engines_give_identical_results_with_heavy_ties(monkeypatch, engine):
    monkeypatch.setattr(search, "ENGINE", engine)
    rng = np.random.default_rng(5)
    raw = rng.integers(-2, 3, size=(400, 16)).astype(np.float32)  # small integers: exact, many ties
    docs, queries = raw, raw[:20] + 1
    hits = search.search_dense(queries, docs, 37, cosine=False)
    np.testing.assert_array_equal(hits.indices, _brute(queries @ docs.T, 37))
    bits, qbits = tf.binarize(raw - 0.5), tf.binarize(raw[:20])
    distance = np.array([[np.unpackbits(a ^ b).sum() for b in bits] for a in qbits])
    np.testing.assert_array_equal(search.search_binary(qbits, bits, 37).indices, _brute(-distance.astype(float), 37))
