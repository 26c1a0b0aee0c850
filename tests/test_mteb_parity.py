"""Our float32 full-dimension scores equal mteb.evaluate's on the same embeddings (within 1e-5), on
the bundled SciFact: mteb gets the raw files' queries and judgements and filters them itself
(tests/test_mteb_oracle.py covers multi-subset tasks, zero-only judgements and instructions)."""

from __future__ import annotations

import gzip
import json

import pytest

from bench import runner
from bench.cache import EmbeddingCache
from bench.config import load_config, with_overrides
from bench.embed import LazyEncoder, embed
from bench.encoders import parse_backend
from bench.metrics import QUALITY_METRICS
from bench.results import read_run
from bench.types import Role
from tests.conftest import REPO
from tests.mteb_reference import mteb_retrieval_scores


def _raw_corpus() -> dict[str, dict]:
    with gzip.open(REPO / "tasks" / "data" / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        return {r["_id"]: {"title": r["title"], "text": r["text"]} for r in map(json.loads, f)}


def _raw_queries_and_qrels() -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The files as they are: every query, every judgement (mteb applies its own rules)."""
    with gzip.open(REPO / "tasks" / "data" / "scifact" / "queries.jsonl.gz", "rt", encoding="utf-8") as f:
        queries = {r["_id"]: r["text"] for r in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = {}
    for line in (REPO / "tasks" / "data" / "scifact" / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    return queries, qrels


def _compare(tmp_path, backend: str, limit: int | None, cache_dir) -> dict[str, float]:
    config = with_overrides(
        load_config(None), backends=(parse_backend(backend),), dims=(384,),
        precisions=("float32",), output_dir=tmp_path / "results", cache_dir=cache_dir, limit=limit,
        measure=False, lexical=(),  # the one float32 cell is compared with mteb
    )  # fmt: skip
    run_dir = runner.run(config, REPO / "tasks")
    _, rows = read_run(run_dir)
    ours = rows.iloc[0]

    # The same vectors, straight from the cache the run filled (nothing is encoded again).
    the_plan = runner.plan(config, REPO / "tasks")
    data, model = the_plan.data["SciFact"], the_plan.models["all-MiniLM-L6-v2"]
    cache, refuse = EmbeddingCache(cache_dir), LazyEncoder(lambda: pytest.fail("re-encoded"))
    docs, _ = embed(data.corpus, Role.DOCUMENT, model, config.backends[0], cache, refuse)
    queries, _ = embed(data.queries, Role.QUERY, model, config.backends[0], cache, refuse)
    raw, (raw_queries, raw_qrels) = _raw_corpus(), _raw_queries_and_qrels()
    if limit:  # a smoke subset: its queries and documents, with their raw judgements
        raw_qrels = {q: raw_qrels[q] for q in data.queries}
    else:
        assert len(raw) == len(data.corpus)
    vectors = dict(zip(data.queries, queries))
    reference = mteb_retrieval_scores(
        {d: raw[d] for d in data.corpus}, {q: raw_queries[q] for q in raw_qrels}, raw_qrels,
        dict(zip(data.corpus, docs)), {q: vectors[q] for q in raw_qrels},
    )  # fmt: skip
    for metric in QUALITY_METRICS:
        assert ours[metric] == pytest.approx(reference[metric], abs=1e-5), metric
    assert ours.main_score == pytest.approx(reference["main_score"], abs=1e-5)
    return reference


def test_full_scifact_with_weightless_hashing_embeddings_matches_mteb(tmp_path):
    reference = _compare(tmp_path, "hashing", None, tmp_path / "cache")
    assert 0.05 < reference["ndcg_at_10"] < 0.95  # a real ranking, not a degenerate one


def test_minilm_on_a_scifact_subset_matches_mteb(tmp_path):
    reference = _compare(tmp_path, "torch", 30, tmp_path / "cache")
    assert reference["ndcg_at_10"] > 0.5


@pytest.mark.slow
def test_minilm_on_full_scifact_matches_mteb(tmp_path):
    from bench.config import default_cache_dir

    reference = _compare(tmp_path, "torch", None, default_cache_dir())
    assert reference["ndcg_at_10"] == pytest.approx(0.6451, abs=0.01)  # MTEB's published MiniLM score


def test_a_document_vector_shorter_than_1e_12_scores_as_mteb_scores_it():
    """mteb (torch's F.normalize) divides by max(norm, 1e-12): a vector of norm 1e-14 keeps a
    cosine of 0.01 with its own direction there, not 1, and ranks below a less aligned document."""
    from pathlib import Path

    import numpy as np

    from bench.evaluate import evaluate_index
    from bench.search import build_index
    from bench.taskdata import judged
    from bench.types import TaskSpec

    corpus = {"a": "text a", "b": "text b", "c": "text c"}
    queries, qrels = {"q1": "query 1", "q2": "query 2"}, {"q1": {"a": 1}, "q2": {"c": 1}}
    docs = {"a": [1e-14, 0.0, 0.0], "b": [0.6, 0.8, 0.0], "c": [0.0, 1.0, 0.1]}
    query_vectors = {"q1": [1.0, 0.0, 0.0], "q2": [0.0, 1.0, 0.0]}
    data = judged(TaskSpec(name="Tiny", source="beir", path=Path(".")), corpus, queries, qrels)
    index = build_index("float32", np.array([docs[d] for d in data.corpus], np.float32), 3)
    ours = evaluate_index(index, np.array([query_vectors[q] for q in data.queries], np.float32),
                          list(data.queries), list(data.corpus), data.qrels, 1000).means  # fmt: skip
    reference = mteb_retrieval_scores({d: {"text": t} for d, t in corpus.items()}, queries, qrels,
                                      {d: np.array(v, np.float32) for d, v in docs.items()},
                                      {q: np.array(v, np.float32) for q, v in query_vectors.items()})  # fmt: skip
    assert reference["precision_at_1"] == 0.5  # q1's relevant document is not first there
    for metric in QUALITY_METRICS:
        assert ours[metric] == pytest.approx(reference[metric], abs=1e-5), metric
