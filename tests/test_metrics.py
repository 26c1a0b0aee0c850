import math

import numpy as np
import pytest

from bench.evaluate import evaluate_index, run_dict
from bench.metrics import METRICS, mean_scores, per_query_scores
from bench.search import Hits, build_index
from bench.testing import KeywordEncoder
from bench.types import Role


def test_metrics_worked_out_by_hand_with_the_keyword_encoder():
    enc = KeywordEncoder(["cat", "dog", "fish"])
    doc_ids = ["a", "b", "c", "d"]
    docs = enc.encode(["cat cat", "dog", "cat dog dog", "fish fish dog"], Role.DOCUMENT)
    queries = enc.encode(["dog"], Role.QUERY)
    # cosine with [0,1,0]: a=0, b=1, c=2/sqrt(5)=0.894, d=1/sqrt(5)=0.447 -> ranking b, c, d, a
    qrels = {"q": {"c": 1, "a": 1}}  # relevant at ranks 2 and 4
    index = build_index("float32", docs, 3)
    scores = evaluate_index(index, queries, ["q"], doc_ids, qrels, top_k=4)
    m = scores.per_query["q"]
    assert m["precision_at_1"] == 0.0 and m["recall_at_3"] == 0.5 and m["recall_at_1000"] == 1.0
    assert m["mrr_at_10"] == 0.5 and m["mrr_at_1"] == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert m["ndcg_at_10"] == pytest.approx(dcg / ideal)
    assert m["map_at_10"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["hit_rate_at_1"] == 0.0 and m["hit_rate_at_3"] == 1.0


def test_mrr_follows_mteb_tie_order_score_then_id_descending():
    # a and b tie; MTEB (and trec_eval) rank the larger id first, so relevant 'a' is second.
    run = {"q": {"a": 0.5, "b": 0.5}}
    m = per_query_scores({"q": {"a": 1}}, run)["q"]
    assert m["mrr_at_10"] == 0.5


def test_identical_ids_are_dropped_after_retrieval_when_the_task_says_so():
    hits = Hits(indices=np.array([[0, 1, 2]]), scores=np.array([[0.9, 0.5, 0.1]], np.float32))
    assert list(run_dict(hits, ["x"], ["x", "y", "z"], True)["x"]) == ["y", "z"]
    assert list(run_dict(hits, ["x"], ["x", "y", "z"], False)["x"]) == ["x", "y", "z"]


def test_every_metric_has_a_direction_and_description():
    assert len(METRICS) == 42
    assert all(m.higher_is_better and m.description for m in METRICS.values())


def test_means_are_order_independent_and_in_unit_interval():
    run = {"q1": {"a": 1.0, "b": 0.5}, "q2": {"b": 1.0, "a": 0.2}}
    qrels = {"q1": {"b": 1}, "q2": {"b": 1, "a": 2}}
    per_query = per_query_scores(qrels, run)
    means = mean_scores(per_query)
    assert means == mean_scores(dict(reversed(list(per_query.items()))))
    assert all(0.0 <= v <= 1.0 for v in means.values())


def test_the_first_relevant_rank_equals_sorting_by_score_then_id_descending():
    import random

    from bench.metrics import _first_relevant_rank

    def by_sorting(docs, relevant):
        ranked = sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)
        return next((rank for rank, (d, _) in enumerate(ranked, 1) if d in relevant), None)

    rng = random.Random(0)
    for t in range(2000):  # heavy ties: a few distinct scores, ids that collide in order
        docs = {f"d{rng.randint(0, 200)}": rng.choice([0.1, 0.2, 0.5, rng.random()]) for _ in range(rng.randint(1, 60))}
        relevant = set(rng.sample(sorted(docs), rng.randint(0, min(3, len(docs))))) | ({"absent"} if t % 5 == 0 else set())
        assert _first_relevant_rank(docs, relevant) == by_sorting(docs, relevant), (docs, relevant)
