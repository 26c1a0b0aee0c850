"""Score one index against a task's queries: search, then metrics per query."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from bench.metrics import mean_scores, per_query_scores
from bench.search import Hits, Index

# The version of what a cell's scores mean (search, transforms, metrics). Part of every cell's
# identity: bump it when a change alters any score, so no stored cell of the old code is reused.
# 4: int8-tanh rounds the float32 steps of an exact tanh; sign bits come from the raw rows;
# normalizing divides by max(norm, 1e-12), as torch's F.normalize does.
SCORING_VERSION = 4


@dataclass(frozen=True)
class CellScores:
    per_query: dict[str, dict[str, float]]
    means: dict[str, float]
    search_seconds: float
    metric_seconds: float


def run_dict(
    hits: Hits, query_ids: Sequence[str], doc_ids: Sequence[str], ignore_identical_ids: bool
) -> dict[str, dict[str, float]]:
    """pytrec_eval's ``{query: {doc: score}}``; identical ids dropped after retrieval, as MTEB does.
    Empty slots (index -1: a lexical query matched fewer than k documents) are left out."""
    docs = np.asarray(doc_ids, dtype=object)
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(query_ids):
        found = hits.indices[row] >= 0
        ranked = dict(zip(docs[hits.indices[row][found]].tolist(), hits.scores[row][found].tolist()))
        if ignore_identical_ids:
            ranked.pop(qid, None)
        run[qid] = ranked
    return run


def evaluate_index(
    index: Index,
    queries: np.ndarray | Sequence[str],
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    top_k: int,
    ignore_identical_ids: bool = False,
) -> CellScores:
    """Exact top-``top_k`` search for every query, then MTEB's metrics. ``index`` is anything with
    ``search(queries, k) -> Hits``: a dense ``Index`` (query vectors) or a lexical one (texts)."""
    t0 = time.perf_counter()
    hits = index.search(queries, min(top_k, len(doc_ids)))
    t1 = time.perf_counter()
    per_query = per_query_scores(qrels, run_dict(hits, query_ids, doc_ids, ignore_identical_ids))
    t2 = time.perf_counter()
    return CellScores(per_query, mean_scores(per_query), t1 - t0, t2 - t1)
