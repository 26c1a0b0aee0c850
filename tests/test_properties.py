"""Property tests (hypothesis) of the transforms, search and metrics, and a bounded fuzz test of
the task loaders."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import precisions, search, store
from bench import transforms as tf
from bench.errors import InputError
from bench.evaluate import evaluate_index
from bench.metrics import per_query_scores
from bench.precisions import Scoring
from bench.search import build_index
from bench.tasks import load_task, task_registry
from bench.testing import vectors_for, write_beir_task

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
seeds = st.integers(0, 2**32 - 1)


@FAST
@given(seed=seeds, n=st.integers(1, 60), dim=st.integers(1, 80), k=st.integers(1, 70),
       engine=st.sampled_from(["numpy", "faiss"]))  # fmt: skip
def test_hamming_ranking_equals_brute_force_on_unpacked_bits(seed, n, dim, k, engine):
    rng = np.random.default_rng(seed)
    docs, queries = rng.standard_normal((n, dim)), rng.standard_normal((3, dim))
    bits, qbits = tf.binarize(docs), tf.binarize(queries)
    distance = ((docs[None] >= 0) != (queries[:, None] >= 0)).sum(-1)
    previous, search.ENGINE = search.ENGINE, engine
    try:
        hits = search.search_binary(qbits, bits, min(k, n))
    finally:
        search.ENGINE = previous
    idx = np.broadcast_to(np.arange(n), distance.shape)
    expected = np.lexsort((idx, distance), axis=-1)[:, : min(k, n)]
    np.testing.assert_array_equal(hits.indices, expected)


@contextmanager
def _small_chunks(engine: str):
    saved = search.ENGINE, search.QUERY_BLOCK, search.DOC_CHUNK, store.CHUNK_ROWS
    search.ENGINE, search.QUERY_BLOCK, search.DOC_CHUNK, store.CHUNK_ROWS = engine, 3, 13, 7
    try:
        yield
    finally:
        search.ENGINE, search.QUERY_BLOCK, search.DOC_CHUNK, store.CHUNK_ROWS = saved


def _brute_force(index, queries: np.ndarray, k: int) -> np.ndarray:
    """float64 scores of every document by the precision's definition, over its own decoded
    vectors (no chunks, no faiss, no running top-k): the reference ``Index.search`` must equal."""
    p = index.precision
    if p.scoring is Scoring.ASYMMETRIC or p.scoring is Scoring.INNER and not p.rescored:
        q, docs = p.prepare(queries, index.dim).astype(np.float64), _decoded(index, p).astype(np.float64)
        return q @ docs.T
    q, docs = index.decode(index.transform_queries(queries)).astype(np.float64), index.decode(index.vectors).astype(np.float64)
    qn, dn = np.linalg.norm(q, axis=1, keepdims=True), np.linalg.norm(docs, axis=1, keepdims=True)
    # the cosine (Hamming ranks as it); the dot product first, so integer codes tie exactly
    return (q @ docs.T) / np.where(qn > 0, qn, 1) / np.where(dn > 0, dn, 1).T


def _decoded(index, p):
    return index.dequantize(index.vectors) if p.scoring is Scoring.ASYMMETRIC else index.decode(index.vectors)


def _ranked(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> np.ndarray:
    """Best k by (score descending, position ascending), among ``candidates`` when given."""
    cols = np.broadcast_to(np.arange(scores.shape[1]), scores.shape) if candidates is None else candidates
    vals = scores if candidates is None else np.take_along_axis(scores, candidates, 1)
    order = np.lexsort((cols, -vals), axis=-1)[:, :k]
    return np.take_along_axis(cols, order, 1)


def _expected(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, the scores that ranked them) by brute force, two stages for rescoring cells."""
    first = _brute_force(index, queries, k)
    if not index.precision.rescored:
        return _ranked(first, k), first
    candidates = _ranked(first, min(len(index.vectors), k * index.rescore_multiplier))
    second = index.precision.prepare(queries, index.dim).astype(np.float64) @ index.dequantize(index.vectors).T.astype(np.float64)
    return _ranked(second, k, candidates), second


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=seeds, n=st.integers(1, 70), dim=st.integers(1, 40), k=st.integers(1, 70), m=st.integers(1, 5),
       duplicates=st.booleans(), engine=st.sampled_from(["numpy", "faiss"]))  # fmt: skip
@pytest.mark.parametrize("name", precisions.names())
def test_every_precision_ranks_as_brute_force_over_its_own_decoded_vectors(name, seed, n, dim, k, m, duplicates, engine):
    rng = np.random.default_rng(seed)
    docs = vectors_for(name, (rng.standard_normal((n, 40)) * rng.uniform(0.5, 2, 40)).astype(np.float32))
    if duplicates:  # exact ties: broken by the lower corpus position
        docs = np.concatenate([docs, docs[rng.integers(0, n, size=n // 2 + 1)]])
    queries = vectors_for(name, rng.standard_normal((4, 40)).astype(np.float32))
    k = min(k, len(docs))
    with _small_chunks(engine):  # many corpus chunks, query blocks and build chunks
        index = build_index(name, docs, dim, rescore_multiplier=m)
        hits = index.search(queries, k)
    assert index.vectors.nbytes == len(docs) * precisions.get(name).bytes_per_vector(dim)  # bytes per row
    expected, scores = _expected(index, queries, k)
    exact = precisions.get(name).scoring is Scoring.HAMMING and not precisions.get(name).rescored
    for row in range(len(queries)):
        if exact or np.array_equal(hits.indices[row], expected[row]):
            np.testing.assert_array_equal(hits.indices[row], expected[row])
            continue
        # otherwise only float rounding may swap neighbours: the score at every rank must agree
        np.testing.assert_allclose(scores[row, hits.indices[row]], scores[row, expected[row]], rtol=0, atol=1e-5)


@FAST
@given(seed=seeds, dim=st.integers(1, 40))
def test_quantization_is_monotone_per_dimension(seed, dim):
    rng = np.random.default_rng(seed)
    corpus = rng.standard_normal((30, dim)).astype(np.float32)
    ranges = tf.fit_ranges(corpus)
    x = np.sort(rng.standard_normal((50, dim)).astype(np.float32) * 2, axis=0)  # increasing down each column
    for q in (tf.quantize_int8(x, ranges), tf.int8_tanh(x), tf.binarize(x) if dim % 8 == 0 else None):
        if q is not None and q.dtype == np.int8:
            assert (np.diff(q.astype(int), axis=0) >= 0).all()


@FAST
@given(seed=seeds, full=st.integers(2, 64), data=st.data())
def test_truncation_then_renormalization_keeps_unit_norm(seed, full, data):
    dim = data.draw(st.integers(1, full))
    x = np.random.default_rng(seed).standard_normal((20, full)).astype(np.float32) * 10
    y = tf.normalize(tf.truncate(x, dim))
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)


runs = st.dictionaries(st.sampled_from(["q1", "q2", "q3"]),
                       st.dictionaries(st.sampled_from([f"d{i}" for i in range(8)]), st.floats(-5, 5), min_size=1),
                       min_size=1)  # fmt: skip
qrels_st = st.dictionaries(st.sampled_from(["q1", "q2", "q3"]),
                           st.dictionaries(st.sampled_from([f"d{i}" for i in range(8)]), st.integers(0, 3), min_size=1),
                           min_size=1)  # fmt: skip


@FAST
@given(run=runs, qrels=qrels_st)
def test_every_metric_stays_in_the_unit_interval(run, qrels):
    for values in per_query_scores(qrels, run).values():
        assert all(0.0 <= v <= 1.0 for v in values.values())


@FAST
@given(seed=seeds, precision=st.sampled_from(precisions.names()), dim=st.sampled_from([8, 16, 24]))
def test_a_permutation_of_the_corpus_changes_no_metric(seed, precision, dim):
    rng = np.random.default_rng(seed)
    n = 40
    docs = vectors_for(precision, rng.standard_normal((n, 24)).astype(np.float32))
    queries = vectors_for(precision, rng.standard_normal((5, 24)).astype(np.float32))
    ids = [f"d{i}" for i in range(n)]
    qrels = {f"q{j}": {f"d{(7 * j + 3) % n}": 1, f"d{(5 * j + 1) % n}": 2} for j in range(5)}
    qids = list(qrels)
    base = evaluate_index(build_index(precision, docs, dim), queries, qids, ids, qrels, top_k=n).means
    perm = rng.permutation(n)
    moved = evaluate_index(build_index(precision, docs[perm], dim), queries, qids, [ids[i] for i in perm], qrels,
                           top_k=n).means  # fmt: skip
    for metric, value in base.items():
        assert moved[metric] == pytest.approx(value, abs=1e-6), metric


lines = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda i, t: json.dumps({"_id": i, "text": t}).encode(), st.text(max_size=4), st.text(max_size=20)),
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(st.text(max_size=5), st.one_of(
        st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)), max_size=4)),
)
qrel_lines = st.one_of(st.binary(max_size=30), st.builds(
    lambda q, d, s: f"{q}\t{d}\t{s}".encode(), st.text(max_size=4), st.text(max_size=4), st.text(max_size=4)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corpus=st.lists(lines, max_size=6), queries=st.lists(lines, max_size=6), qrels=st.lists(qrel_lines, max_size=6),
       gz=st.booleans())  # fmt: skip
def test_fuzzed_task_files_load_or_fail_with_an_input_error(tmp_path_factory, corpus, queries, qrels, gz):
    import gzip

    root = tmp_path_factory.mktemp("fuzz")
    write_beir_task(root, "F", {}, {}, {})
    folder = root / "data" / "F"
    for name, content in (("corpus.jsonl", corpus), ("queries.jsonl", queries), ("qrels/test.tsv", qrels)):
        data = b"\n".join(content)
        (folder / name).unlink()
        if gz and name != "qrels/test.tsv":
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    try:
        data = load_task(task_registry(root).get("F"))
    except InputError:
        return
    assert data.queries and all(q in data.queries for q in data.qrels)


def test_a_carriage_return_inside_qrels_is_an_input_error_not_a_crash(tmp_path):
    write_beir_task(tmp_path, "F", {"d": ("t", "x")}, {"q": "y"}, {})
    (tmp_path / "data" / "F" / "qrels" / "test.tsv").write_bytes(b"\r\x00")  # found by the fuzz test
    with pytest.raises(InputError, match="expected 3 tab-separated fields"):
        load_task(task_registry(tmp_path).get("F"))
