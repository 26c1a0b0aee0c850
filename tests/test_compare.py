"""bench compare (runs and models side by side, paired tests on shared queries), the results store
across runs (DuckDB) and ``bench ls runs``."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from bench import catalog, runner
from bench.cli import main
from bench.compare import compare
from bench.config import load_config, with_overrides
from bench.results import MANIFEST, PER_QUERY, ROWS
from bench.testing import synthetic_task, write_beir_task, write_models
from tests.conftest import TOY_MODEL


@pytest.fixture
def world(tmp_path):
    """A 40-query generated task, two hashing models (one with a registry parameter count), a sweep."""
    tasks = tmp_path / "tasks"
    write_beir_task(tasks, "Gen", *synthetic_task(n_queries=40, n_docs=80, seed=5))
    write_models(tasks, {"toy": {**TOY_MODEL, "n_parameters": 1000}, "wide": {**TOY_MODEL, "name": "test/wide",
                                                                            "dim": 64, "n_parameters": 50000}})  # fmt: skip
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("models: [toy]\ntasks: [Gen]\nbackends: [hashing]\ndims: [32, 16]\nprecisions: [float32, int8]\n"
                     f"top_k: 20\nbootstrap_resamples: 100\noutput_dir: {tmp_path / 'results'}\n"
                     f"cache_dir: {tmp_path / 'cache'}\n")  # fmt: skip
    return {"tasks": tasks, "config": load_config(sweep), "results": tmp_path / "results", "tmp": tmp_path}


def _run(world, run_id, **overrides):
    return runner.run(with_overrides(world["config"], **overrides), world["tasks"], run_id=run_id)


def _drop(run_dir, amount, precision="int8", dim=16):
    """Lower one cell's per-query main scores by ``amount`` and its row's means to match."""
    per_query, rows = pd.read_parquet(run_dir / PER_QUERY), pd.read_parquet(run_dir / ROWS)
    mask = (per_query.precision == precision) & (per_query.dim == dim)
    per_query.loc[mask, "ndcg_at_10"] -= amount
    row = (rows.precision == precision) & (rows.dim == dim)
    rows.loc[row, ["ndcg_at_10", "main_score"]] = per_query.loc[mask, "ndcg_at_10"].mean()
    per_query.to_parquet(run_dir / PER_QUERY, index=False)
    rows.to_parquet(run_dir / ROWS, index=False)


def test_compare_on_two_runs_of_different_grids_lists_the_unshared_cells(world, tmp_path, capsys):
    a = _run(world, "a", dims=(32, 16), precisions=("float32", "int8"))
    b = _run(world, "b", dims=(32, 8), precisions=("float32", "binary"), lexical=("bm25",))
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "## bench compare: a (base) against b" in out and "### Gen (nDCG@10)" in out
    assert "Cells not in every run:" in out
    for line in ["toy · hashing-cpu-float32 · 16 · int8: only in a", "toy · hashing-cpu-float32 · 32 · int8: only in a",
                 "toy · hashing-cpu-float32 · 8 · binary: only in b", "bm25 · bm25s · – · sparse: only in b"]:
        assert f"- {line}\n" in out, line
    # the one shared cell is compared (identical inputs: difference 0, no mark)
    assert "| toy | hashing-cpu-float32 | 32 | float32 | " in out and "+0.0000 (p 1)" in out
    data = json.loads(out_json.read_text())
    cells = data["tasks"][0]["cells"]
    shared = [c for c in cells if len(c["present_in"]) == 2]
    assert [(c["dim"], c["precision"]) for c in shared] == [(32, "float32")]
    assert shared[0]["versus_base"]["b"]["difference"] == 0 and shared[0]["versus_base"]["b"]["n_queries"] == 40
    unshared = {(c["dim"], c["precision"]) for c in data["tasks"][0]["unshared"]}
    assert unshared == {("16", "int8"), ("32", "int8"), ("16", "float32"), ("8", "binary"), ("32", "binary"),
                        ("8", "float32"), ("–", "sparse")}  # fmt: skip


def test_a_significant_drop_is_marked_after_holm_and_noise_is_not(world):
    a = _run(world, "a")
    b = _run(world, "b")
    _drop(b, 0.02)  # every query of one cell 0.02 lower
    report = compare([a, b])
    (table,) = report.tables
    by_cell = {(ln.key["dim"], ln.key["precision"]): ln.versus[0] for ln in table.lines}
    dropped = by_cell[(16, "int8")]
    assert dropped.difference == pytest.approx(-0.02) and dropped.mark == "▼" and dropped.p_holm < 0.05
    assert dropped.p_holm >= dropped.p_value  # adjusted for the other cells of the table
    assert all(v.difference == 0 and v.mark == "" for k, v in by_cell.items() if k != (16, "int8"))


def test_cells_of_other_task_data_are_not_compared(world, capsys):
    a = _run(world, "a")
    b = _run(world, "b", limit=20)  # 20 of the 40 queries: another task digest
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out.count("not compared: task data differs") == 4 and "▼" not in out.split("### Gen")[1]


def test_compare_across_models_with_sizes_and_an_html_report(world, tmp_path, capsys):
    a = _run(world, "a")
    b = _run(world, "b", models=("wide",), dims=(64, 32, 16))
    page = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--across", "models", "--html", str(page), "--plots",
                 str(tmp_path / "plots")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "toy (hashing-cpu-float32) (base) against wide (hashing-cpu-float32)" in out
    assert "| toy (hashing-cpu-float32) | toy | hashing-cpu-float32 | 1,000 |" in out  # registry parameters
    assert "| wide (hashing-cpu-float32) | wide | hashing-cpu-float32 | 50,000 |" in out
    assert "- 64 · float32: only in wide (hashing-cpu-float32)" in out
    text = page.read_text()
    assert 'alt="Gen__models"' in text and 'alt="Gen__pareto"' in text and '<table id="compare-0">' in text
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["Gen__models.png", "Gen__pareto.png"]


def test_runs_from_a_glob_in_start_order_and_usage_errors(world, capsys):
    _run(world, "r2")
    _run(world, "r1")  # started later: a glob puts it second
    assert main(["compare", str(world["results"] / "r*")]) == 0
    assert "## bench compare: r2 (base) against r1" in capsys.readouterr().out
    assert main(["compare", str(world["results"] / "r1")]) == 2
    assert "compare needs at least two runs" in capsys.readouterr().err
    assert main(["compare", str(world["results"] / "r1"), str(world["results"] / "r1")]) == 2
    assert "is named more than once" in capsys.readouterr().err
    assert main(["compare", str(world["results"] / "zz*"), str(world["results"] / "r1")]) == 2
    assert "matches no run folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- the store across runs


def test_the_store_answers_across_runs_and_ls_lists_them(world, capsys):
    a = _run(world, "a", precisions=("float32", "int8", "binary"))
    _run(world, "b", models=("wide",), dims=(64, 16))
    (world["results"] / "broken").mkdir()
    (world["results"] / "broken" / MANIFEST).write_text("{}")
    (world["results"] / "baselines").mkdir()  # not a run: left out
    runs = catalog.find_runs(world["results"])
    assert [(r.run_id, r.status) for r in runs] == [("broken", "invalid"), ("a", "finished"), ("b", "finished")]
    con = catalog.connect(runs)
    history = catalog.model_history(con, "toy")
    assert set(history.run_id) == {"a"} and len(history) == 6 and history.main_score.notna().all()
    best = catalog.best_under_budget(con, 8)
    rows = pd.concat([pd.read_parquet(r.path / ROWS).assign(run_id=r.run_id) for r in runs if r.queryable])
    under = rows[rows.bytes_per_vector <= 8]
    assert best.main_score.iloc[0] == under.main_score.max() and best.bytes_per_vector.iloc[0] <= 8
    models = catalog.task_models(con, "Gen")
    assert set(models.model) == {"toy", "wide"} and dict(zip(models.model, models.parameters)) == {"toy": 1000, "wide": 50000}
    float32 = rows[(rows.precision == "float32") & (rows.model == "toy") & (rows.dim == 32)].main_score.iloc[0]
    assert models.set_index("model").float32_score["toy"] == float32
    assert con.execute("SELECT count(DISTINCT run_id) FROM per_query").fetchone()[0] == 2
    assert main(["ls", "runs", "--results-dir", str(world["results"])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("a\tfinished\t") and "cells=6\tmodels=toy\ttasks=Gen" in out[1]
    assert out[0].startswith("broken\tinvalid\t") and "no schema_version" in out[0]
    assert main(["query", "budget", "8", "--results-dir", str(world["results"])]) == 0
    out = capsys.readouterr().out
    assert "| Gen | " in out and " | ndcg_at_10 | " in out and "left out" not in out
    assert main(["query", "budget", "-1", "--results-dir", str(world["results"])]) == 2
    assert "expected a number of bytes >= 0" in capsys.readouterr().err
    assert a.name == "a"


def test_the_store_leaves_limit_runs_out_of_a_tasks_score(world, capsys):
    """A --limit smoke run scores a few queries over a cut corpus; it scored 1.0 where the task's
    run scored 0.95, and was answered as the task's best and newest score."""
    _run(world, "full", precisions=("float32",))
    smoke = _run(world, "smoke", precisions=("float32",), limit=2)
    con = catalog.connect(catalog.find_runs(world["results"]))
    assert set(catalog.best_under_budget(con, 1e9).run_id) == {"full"}
    assert set(catalog.task_models(con, "Gen").run_id) == {"full"}
    history = catalog.model_history(con, "toy")
    assert (history[history.run_id == "smoke"].query_limit == 2).all()
    assert history[history.run_id == "full"].query_limit.isna().all()
    for question, value in (("budget", "1e9"), ("task", "Gen")):
        assert main(["query", question, value, "--results-dir", str(world["results"])]) == 0
        out = capsys.readouterr().out
        assert "| smoke |" not in out and "| full |" in out and "left out: 1 --limit run(s)" in out
    # the smoke run's own data has its own digest: alone, it is answered apart, never as the full one's
    digests = con.execute("SELECT DISTINCT run_id, task_digest FROM rows").df().set_index("run_id").task_digest
    assert digests["full"] != digests["smoke"] and smoke.name == "smoke"
    assert catalog.limited_runs(con, task="Gen") == 1 and catalog.limited_runs(con, task="Other") == 0
    assert main(["query", "model", "toy", "--results-dir", str(world["results"])]) == 0
    assert "<NA>" not in capsys.readouterr().out
    # a run folder copied as a backup keeps its run id: each parquet row is still one row of the view
    shutil.copytree(world["results"] / "full", world["results"] / "full-backup")
    con = catalog.connect(catalog.find_runs(world["results"]))
    parquet = sum(len(pd.read_parquet(p)) for p in world["results"].glob(f"*/{ROWS}"))
    assert con.execute("SELECT count(*) FROM rows").fetchone()[0] == parquet


def test_rows_carry_the_parameter_count_and_its_source(world):
    run = _run(world, "a", lexical=("bm25",))
    rows = pd.read_parquet(run / ROWS)
    dense = rows[rows.dim > 0]
    assert set(dense.parameters) == {1000} and set(dense.parameters_source) == {"registry"}
    assert rows[rows.dim == 0].parameters.isna().all()
    assert pd.api.types.is_integer_dtype(rows.parameters)  # a count, stored as an integer column
