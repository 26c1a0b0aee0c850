"""Retrieval metrics exactly as MTEB computes them: pytrec_eval plus MTEB's own MRR.

nDCG, MAP, Recall, Precision and hit rate come from pytrec_eval (``ndcg_cut``, ``map_cut``,
``recall``, ``P``, ``success``) over the top documents per query; MRR@k follows MTEB's function
(documents ordered by score then id, both descending; relevant means relevance > 0). Names follow
MTEB (``ndcg_at_10``). Unlike MTEB we do not round means to 5 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pytrec_eval

K_VALUES = (1, 3, 5, 10, 20, 100, 1000)

_PYTREC = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P",
           "hit_rate": "success"}  # fmt: skip


@dataclass(frozen=True)
class Metric:
    """What a result column means and which way is better."""

    name: str
    higher_is_better: bool
    description: str

    def worse_by(self, baseline: float, measured: float) -> float:
        """How much worse ``measured`` is than ``baseline`` in this metric's direction (< 0: better)."""
        return baseline - measured if self.higher_is_better else measured - baseline

    def worse_than_interval(self, measured: float, low: float, high: float) -> bool:
        """Whether ``measured`` lies beyond the interval on the worse side."""
        return measured < low if self.higher_is_better else measured > high


def _describe(family: str, k: int) -> str:
    return {
        "ndcg": f"normalized discounted cumulative gain over the top {k}",
        "map": f"mean average precision over the top {k}",
        "recall": f"share of relevant documents found in the top {k}",
        "precision": f"share of the top {k} that is relevant",
        "mrr": f"reciprocal rank of the first relevant document within the top {k}",
        "hit_rate": f"share of queries with a relevant document in the top {k}",
    }[family]


FAMILIES = ("ndcg", "map", "recall", "precision", "mrr", "hit_rate")
METRICS: dict[str, Metric] = {
    f"{f}_at_{k}": Metric(f"{f}_at_{k}", True, _describe(f, k)) for f in FAMILIES for k in K_VALUES
}
QUALITY_METRICS = tuple(METRICS)
# The task's main score (a copy of one quality metric, named by the task's metadata): what the
# tables, retention, significance marks and the gate's default comparison are about.
MAIN_SCORE = Metric("main_score", True, "the task's main score (MTEB metadata's main_score)")
GATED_QUALITY = (MAIN_SCORE.name, *QUALITY_METRICS)

COST_METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("documents_per_second", True, "encode throughput, documents per second"),
    Metric("tokens_per_second", True, "encode throughput, tokens per second"),
    Metric("query_latency_p50_ms", False, "median single-query encode latency (ms)"),
    Metric("query_latency_p95_ms", False, "95th-percentile single-query encode latency (ms)"),
    Metric("peak_rss_bytes", False, "peak resident memory of the process for this backend"),
    Metric("peak_cuda_bytes", False, "peak allocated CUDA memory"),
    Metric("load_seconds", False, "model load time"),
    Metric("search_queries_per_second", True, "exact-search throughput, queries per second"),
    Metric("search_latency_p50_ms", False, "median single-query search latency (ms)"),
    Metric("search_latency_p95_ms", False, "95th-percentile single-query search latency (ms)"),
    Metric("index_bytes", False, "size of the stored index"),
    Metric("bytes_per_vector", False, "bytes per stored document vector"),
)}  # fmt: skip
ALL_METRICS = {**METRICS, MAIN_SCORE.name: MAIN_SCORE, **COST_METRICS}


def _first_relevant_rank(docs: Mapping[str, float], relevant: set[str]) -> int | None:
    """The 1-based rank of the first relevant document when ``docs`` are sorted by (score, id)
    descending (pytrec_eval's order), without sorting: one more than the number of documents that
    sort before the best-placed relevant one. None when no retrieved document is relevant."""
    hits = [(score, d) for d, score in docs.items() if d in relevant]
    if not hits:
        return None
    best_score, best_id = max(hits)
    scores = np.fromiter(docs.values(), dtype=np.float64, count=len(docs))
    ahead = int((scores > best_score).sum())
    keys = list(docs)
    ahead += sum(1 for i in np.flatnonzero(scores == best_score) if keys[i] > best_id)
    return ahead + 1


def _mrr(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]):
    out: dict[str, dict[str, float]] = {}
    for qid, docs in run.items():
        if qid not in qrels:
            continue
        first = _first_relevant_rank(docs, {d for d, r in qrels[qid].items() if r > 0})
        out[qid] = {f"mrr_at_{k}": (1.0 / first if first and first <= k else 0.0) for k in K_VALUES}
    return out


def per_query_scores(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """Every metric for every evaluated query: ``{query_id: {metric: value}}``."""
    ks = ",".join(str(k) for k in K_VALUES)
    measures = {f"{m}.{ks}" for m in _PYTREC.values()}
    raw = pytrec_eval.RelevanceEvaluator(
        {q: dict(r) for q, r in qrels.items()}, measures
    ).evaluate({q: dict(d) for q, d in run.items()})
    mrr = _mrr(qrels, run)
    out: dict[str, dict[str, float]] = {}
    for qid, values in raw.items():
        row = {f"{f}_at_{k}": float(values[f"{m}_{k}"]) for f, m in _PYTREC.items() for k in K_VALUES}
        row.update(mrr.get(qid, {f"mrr_at_{k}": 0.0 for k in K_VALUES}))
        out[qid] = {name: row[name] for name in QUALITY_METRICS}
    return out


def mean_scores(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Means over queries (in a fixed query order, so sums are bit-reproducible)."""
    qids = sorted(per_query)
    return {m: float(np.mean([per_query[q][m] for q in qids])) for m in QUALITY_METRICS}
