"""The BM25 baseline (bm25s): its scores are bm25s's, ranked by bench's exact rule, and it is a row
of every table, interval, comparison, gate and export like any cell."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import lexical, runner
from bench.cli import main
from bench.config import load_config, with_overrides
from bench.evaluate import evaluate_index
from bench.results import read_run

CORPUS = ["the cell divides", "cells divide and grow", "a protein folds", "the protein binds a cell receptor",
          "nothing relevant here", "the cell divides"]  # fmt: skip


def test_scores_are_bm25s_own_and_ties_go_to_the_lower_position():
    import bm25s

    index = lexical.build(lexical.LEXICAL["bm25"], CORPUS)
    hits = index.search(["cell divides", "protein"], 6)
    reference = bm25s.BM25()  # the documented defaults, fed the raw texts
    reference.index(bm25s.tokenize(CORPUS, show_progress=False), show_progress=False)
    for row, query in enumerate(["cell divides", "protein"]):
        scores = reference.get_scores(bm25s.tokenize(query, return_ids=False, show_progress=False)[0])
        found = hits.indices[row][hits.indices[row] >= 0]
        np.testing.assert_allclose(hits.scores[row][: len(found)], scores[found], rtol=1e-6)
        expected = np.lexsort((np.arange(len(CORPUS)), -scores))[: len(found)]
        np.testing.assert_array_equal(found, expected)
        assert set(found) == set(np.flatnonzero(scores > 0))  # zero-score documents are not retrieved
    assert list(hits.indices[0][:2]) == [0, 5]  # identical documents: lower position first


def test_a_query_matching_nothing_scores_zero_instead_of_vanishing():
    index = lexical.build(lexical.LEXICAL["bm25"], CORPUS)
    qrels = {"q1": {"d2": 1}, "q2": {"d0": 1}}
    scores = evaluate_index(index, ["protein", "zebra"], ["q1", "q2"], [f"d{i}" for i in range(6)], qrels, 10)
    assert set(scores.per_query) == {"q1", "q2"} and scores.per_query["q2"]["ndcg_at_10"] == 0.0
    assert scores.means["ndcg_at_10"] == pytest.approx(scores.per_query["q1"]["ndcg_at_10"] / 2)


def test_stemming_is_an_option():
    plain = lexical.build(lexical.LEXICAL["bm25"], CORPUS).search(["dividing cells"], 6)
    stemmed = lexical.build(lexical.LEXICAL["bm25-stemmed"], CORPUS).search(["dividing cells"], 6)
    assert set(plain.indices[0][plain.indices[0] >= 0]) == {1}  # only the literal "cells"
    assert {0, 1, 5, 3} <= set(stemmed.indices[0][stemmed.indices[0] >= 0])  # cell(s), divide(s)


def test_stemmed_bm25_on_scifact_matches_the_figure_bm25s_publishes():
    """bm25s's benchmark (Lucene, k1 1.5, b 0.75, English stop words, Snowball stems, title + text)
    lists SciFact nDCG@10 = 68.7 (xhluca/bm25-benchmarks); the same setting here must agree."""
    from bench.tasks import load_task, task_registry

    data = load_task(task_registry().get("SciFact"))
    index = lexical.build(lexical.LEXICAL["bm25-stemmed"], list(data.corpus.values()))
    scores = evaluate_index(index, list(data.queries.values()), list(data.queries), list(data.corpus), data.qrels, 1000)
    assert scores.means["ndcg_at_10"] == pytest.approx(0.687, abs=0.005)


@pytest.fixture
def lexical_run(toy_sweep, toy_tasks_dir):
    task = toy_tasks_dir / "retrieval" / "Toy.yaml"  # exports need the dataset's revision and languages
    task.write_text(task.read_text() + "revision: v1\nlanguages: [eng-Latn]\n")
    config = with_overrides(load_config(toy_sweep), lexical=("bm25",), measure=True, bootstrap_resamples=200)
    return runner.run(config, toy_tasks_dir, run_id="lex")


def test_bm25_is_a_cell_with_intervals_costs_and_a_line_in_each_table(lexical_run, capsys):
    _, rows = read_run(lexical_run)
    bm25 = rows[rows.model == "bm25"].iloc[0]
    assert (bm25.backend, bm25.dim, bm25.precision, bm25.rescore_multiplier) == ("bm25s", 0, "sparse", 0)
    assert bm25.main_score_ci_low <= bm25.main_score <= bm25.main_score_ci_high
    assert bm25.index_bytes > 0 and bm25.bytes_per_vector == pytest.approx(bm25.index_bytes / bm25.n_documents)
    assert bm25.search_queries_per_second > 0 and bm25.search_latency_p50_ms > 0
    assert np.isnan(bm25.retention)  # no float32 reference of its own: tables compare it per group
    assert main(["report", str(lexical_run)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("| bm25 (lexical, no dimensions) |"))
    reference = rows[(rows.model == "toy") & (rows.precision == "float32") & (rows.dim == 32)].main_score.iloc[0]
    assert f"{bm25.main_score:.4f} ({100 * bm25.main_score / reference:.1f}%)" in line
    assert (lexical_run / "plots" / "Toy__pareto.png").stat().st_size > 10_000


def test_the_gate_and_the_mteb_export_handle_the_lexical_cell(lexical_run, tmp_path):
    assert main(["baseline", str(lexical_run), "-o", str(tmp_path / "base.json")]) == 0
    cells = json.loads((tmp_path / "base.json").read_text())["cells"]
    assert any(c["model"] == "bm25" and c["dim"] == 0 for c in cells)
    assert main(["check", str(lexical_run), "--baseline", str(tmp_path / "base.json")]) == 0
    assert main(["export-mteb", str(lexical_run), str(tmp_path / "mteb")]) == 0
    assert list((tmp_path / "mteb").glob("bm25s__0__sparse/bm25s__bm25/*/Toy.json"))


def test_the_stemmed_baselines_identity_names_its_stemmer(monkeypatch):
    """PyStemmer's stems are the stemmed baseline's tokens: another version may score otherwise, so
    a cell from it is not reused; the unstemmed baseline's identity does not change with it."""
    from bench import environment, units
    from bench.types import Cell

    stemmed, plain = (Cell(name, "Toy", "bm25s", 0, "sparse") for name in ("bm25-stemmed", "bm25"))
    before = units._lexical_identity(stemmed), units._lexical_identity(plain)
    assert any(part.startswith("PyStemmer ") for part in before[0])
    real = environment.package_version
    monkeypatch.setattr(environment, "package_version", lambda name: "0.0-other" if name == "PyStemmer" else real(name))
    assert units._lexical_identity(stemmed) != before[0] and units._lexical_identity(plain) == before[1]
