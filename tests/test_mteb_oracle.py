"""bench equals ``mteb.evaluate`` on raw MTEB tasks: mteb gets the unfiltered task, bench loads the
same task through ``mteb:<Name>`` (mteb's own registry and loader), and every metric of every
(split, subset) must agree within 1e-5 (mteb rounds to 5 decimals), with the same main score.

The tasks exercise each rule of the README's MTEB table: a query judged only with 0 (kept, scores
0), an empty judgement list and a query without judgements (dropped), judgements of an id that
is no query (ignored), a judged document missing from the corpus (counts as relevant), instruction
columns (appended after one space; empty ones add a trailing space), a subset without
instructions, two subsets x two splits, a main score other than nDCG@10, identical ids, and
heavily tied scores both inside the top k and at its cut.
"""

from __future__ import annotations

import pytest

from bench.aggregate import task_aggregates
from bench.metrics import K_VALUES, QUALITY_METRICS
from bench.report import aggregate_table
from tests.mteb_offline import (
    KEYWORDS,
    MULTI,
    SUBSETS,
    OfflineSpec,
    SplitData,
    bench_rows,
    keyword_split,
    mteb_entry,
    mteb_evaluate,
    offline_task,
    register,
)


def assert_rows_equal_mteb(rows, mteb_result, task_class, metrics=QUALITY_METRICS) -> None:
    """Every row's metrics against mteb's entry of the same split and subset (none missing), and
    the same main score: the task metadata's, by name and by value."""
    entries = [(split, e["hf_subset"]) for split in mteb_result.scores for e in mteb_result.scores[split]]
    assert sorted(zip(rows.split, rows.subset)) == sorted(entries)
    main = task_class.metadata.main_score
    assert set(rows.main_score_name) == {main}
    for _, row in rows.iterrows():
        entry = mteb_entry(mteb_result, row.split, row.subset)
        for metric in metrics:
            assert row[metric] == pytest.approx(entry[metric], abs=1e-5), (row.split, row.subset, metric)
        assert entry["main_score"] == entry[main]
        assert row.main_score == row[main] == pytest.approx(entry["main_score"], abs=1e-5)


def test_multi_subset_task_with_instructions_and_zero_judgements_equals_mteb(tmp_path, monkeypatch):
    task = offline_task(MULTI)
    register(monkeypatch, task)
    reference = mteb_evaluate(task, KEYWORDS)
    _, rows = bench_rows(tmp_path, ("mteb:OfflineMultiSubset",))

    assert len(rows) == 4 and set(rows.task) == {f"mteb:OfflineMultiSubset/{s}@{sp}" for s in SUBSETS
                                                 for sp in ("dev", "test")}  # fmt: skip
    assert set(rows.main_score_name) == {"ndcg_at_1"} and set(rows.dataset_revision) == {"rev-offline-1"}
    assert_rows_equal_mteb(rows, reference, task)
    assert (rows.n_queries == 5).all()  # q0-q4: the zero-only q2 counts; q5, q6, qX do not
    # MTEB's aggregate (TaskResult.get_score: mean main score over every split and subset)
    (agg,) = task_aggregates(rows).itertuples()
    assert agg.entries == 4 and agg.main_score == pytest.approx(reference.get_score(), abs=1e-5)
    table = aggregate_table(rows)
    assert f"| OfflineMultiSubset | hashing-cpu-float32 | 5 | float32 | ndcg_at_1 | {agg.main_score:.4f} | 4 |" in table


def test_the_data_exercises_each_rule(tmp_path, monkeypatch):
    """The parity above could not pass by accident: the zero-only query moves the means, and the
    instructions carry the only keyword of the English queries."""
    task = offline_task(MULTI)
    register(monkeypatch, task)
    strict = "name: OfflineMultiSubset\nsource: mteb\nquery_filter: positive\n"
    _, rows = bench_rows(tmp_path, ("OfflineMultiSubset",), yaml_tasks={"strict": strict})
    reference = mteb_evaluate(task, KEYWORDS)
    assert (rows.n_queries == 4).all()  # the old rule drops the zero-only q2
    for _, row in rows.iterrows():  # ... and inflates every mean by 5/4 (q2 scores 0 everywhere)
        entry = mteb_entry(reference, row.split, row.subset)
        assert row.recall_at_1000 == pytest.approx(entry["recall_at_1000"] * 5 / 4, abs=1e-5)
    assert any(row.recall_at_1000 > 0 for _, row in rows.iterrows())
    t = task()
    t.load_data()
    texts = [t.dataset["en"]["dev"]["queries"][i]["text"] for i in range(3)]
    assert not any(k in " ".join(texts) for k in KEYWORDS)  # only the instructions name keywords


def test_a_main_score_other_than_ndcg_at_10_flows_into_rows_retention_and_aggregate(tmp_path, monkeypatch):
    data = {"default": {"test": keyword_split(7, False)}}
    spec = OfflineSpec(name="OfflineRecall", main_score="recall_at_3", data=data)
    task = offline_task(spec)
    register(monkeypatch, task)
    reference = mteb_evaluate(task, KEYWORDS)
    _, rows = bench_rows(tmp_path, ("mteb:OfflineRecall",))
    (row,) = rows.itertuples()
    entry = mteb_entry(reference, "test", "default")
    assert row.task == "mteb:OfflineRecall" and row.main_score_name == "recall_at_3"
    assert row.main_score == row.recall_at_3 == pytest.approx(entry["main_score"], abs=1e-5)
    assert row.main_score != pytest.approx(row.ndcg_at_10)  # the data tells the two apart
    assert_rows_equal_mteb(rows, reference, task)


def _tied_split() -> SplitData:
    """Every document has the same vector, so every score ties: only the tie rules order them."""
    ids = [f"d{i:02d}" for i in range(10)] + ["10", "9", "a", "B", "b", "d1", "d10", "d2", "x", "Z", "qa"]
    corpus = {d: ("", f"text {d} alpha") for d in ids}
    queries = {"qa": "alpha a", "qb": "alpha b", "qc": "alpha c", "qd": "alpha d"}
    qrels = {"qa": {"x": 1, "qa": 1}, "qb": {"d05": 1}, "qc": {"10": 1}, "qd": {"9": 1, "B": 2}}
    return SplitData(corpus, queries, qrels)


@pytest.mark.parametrize("identical", [False, True])
def test_all_scores_tied_rank_as_mteb_ranks_them(tmp_path, monkeypatch, identical):
    spec = OfflineSpec(name="OfflineTies", data={"default": {"test": _tied_split()}}, ignore_identical_ids=identical)
    task = offline_task(spec)
    register(monkeypatch, task)
    reference = mteb_evaluate(task, KEYWORDS)
    _, rows = bench_rows(tmp_path, ("mteb:OfflineTies",))
    assert_rows_equal_mteb(rows, reference, task)
    # by id descending 'x' ranks first (qa's hit), '10' last (qc's only relevant document)
    assert rows.ndcg_at_1.iloc[0] == 0.25 and rows.recall_at_20.iloc[0] < 1.0


def test_ties_at_the_top_k_cut_keep_the_larger_ids_as_mteb_does(tmp_path, monkeypatch):
    """11 identical documents, top 10 kept (mteb's k_values capped at 10): torch.topk hands mteb
    all 11 (top_k + 1), and its heap of (score, id) keeps the 10 largest ids. bench's search must
    drop d00 as well: keeping the first 10 in file order would lose d10 and rank d00 instead."""
    ids = [f"d{i:02d}" for i in range(11)]
    split = SplitData({d: ("", f"{d} gamma") for d in ids}, {"q": "gamma"}, {"q": {"d10": 1, "d00": 1}})
    spec = OfflineSpec(name="OfflineCut", data={"default": {"test": split}}, k_values=(1, 3, 5, 10))
    task = offline_task(spec)
    register(monkeypatch, task)
    reference = mteb_evaluate(task, KEYWORDS)
    _, rows = bench_rows(tmp_path, ("mteb:OfflineCut",), top_k=10)
    metrics = [f"{f}_at_{k}" for f in ("ndcg", "map", "recall", "precision", "mrr", "hit_rate") for k in K_VALUES
               if k <= 10]  # fmt: skip
    assert_rows_equal_mteb(rows, reference, task, metrics)
    assert rows.recall_at_10.iloc[0] == 0.5 and rows.ndcg_at_1.iloc[0] == 1.0  # d10 kept and first
