import json

import numpy as np
import pandas as pd
import pytest

from bench import runner
from bench.cli import main
from bench.config import load_config, with_overrides
from bench.results import PER_QUERY, ROWS
from bench.testing import synthetic_task, write_beir_task, write_models
from tests.conftest import TOY_MODEL


@pytest.fixture
def two_runs(toy_sweep, toy_tasks_dir, tmp_path):
    config = with_overrides(load_config(toy_sweep), bootstrap_resamples=200)
    a = runner.run(config, toy_tasks_dir, run_id="a")
    b = runner.run(config, toy_tasks_dir, run_id="b")
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(a), "-o", str(baseline)]) == 0
    return a, b, baseline


def _edit(run_dir, column, fn, precision="binary", dim=16):
    rows = pd.read_parquet(run_dir / ROWS)
    mask = (rows.precision == precision) & (rows.dim == dim)
    rows.loc[mask, column] = fn(rows.loc[mask, column])
    rows.to_parquet(run_dir / ROWS, index=False)


def _check(run_dir, baseline, *flags):
    return main(["check", str(run_dir), "--baseline", str(baseline), *flags])


def test_an_identical_run_holds(two_runs, capsys):
    _, b, baseline = two_runs
    assert _check(b, baseline) == 0
    out = capsys.readouterr().out
    assert "✅ no regressions" in out and "18 cells, 18 metric comparisons" in out
    assert "paired sign-flip test, Holm-adjusted across 18 cells" in out
    assert json.loads((b / "check.json").read_text())["regressions"] == 0
    stored = json.loads(baseline.read_text())
    assert {"grid_fingerprint", "packages", "cells", "task_digests", "per_query"} <= set(stored)
    assert {"value", "ci_low", "ci_high"} <= set(stored["cells"][0]["metrics"]["ndcg_at_10"])
    per_query = pd.read_parquet(baseline.parent / stored["per_query"]["file"])
    assert stored["per_query"]["file"] == "baseline.per_query.parquet" and len(per_query) == 18 * 3


def test_a_metric_without_per_query_scores_is_gated_on_its_tolerance(two_runs, capsys):
    _, b, baseline = two_runs
    _edit(b, "ndcg_at_10", lambda v: v - 0.01)
    assert _check(b, baseline, "--metrics", "ndcg_at_10") == 1
    out = capsys.readouterr().out
    assert "❌ 1 regression(s)" in out and "| toy | Toy | hashing-cpu-float32 | 16 | binary | ndcg_at_10 |" in out
    assert _check(b, baseline, "--metrics", "ndcg_at_10", "--tolerance", "ndcg_at_10=abs:0.02") == 0


def test_the_main_score_is_gated_under_its_own_name(two_runs, capsys):
    _, b, baseline = two_runs
    _edit(b, "main_score_name", lambda v: v.replace("ndcg_at_10", "ndcg_at_1"))
    assert _check(b, baseline) == 2
    assert "the baseline's main score is ndcg_at_10, the run's is ndcg_at_1" in capsys.readouterr().err


def test_direction_is_respected_for_costs(two_runs):
    _, b, baseline = two_runs
    _edit(b, "query_latency_p95_ms", lambda v: v * 0.5)  # faster is fine
    assert _check(b, baseline, "--metrics", "query_latency_p95_ms") == 0
    _edit(b, "query_latency_p95_ms", lambda v: v * 4)  # 2x slower than the baseline: regression
    assert _check(b, baseline, "--metrics", "query_latency_p95_ms") == 1
    _edit(b, "ndcg_at_10", lambda v: v + 0.2)  # better quality never fails
    assert _check(b, baseline, "--metrics", "ndcg_at_10") == 0


def test_outside_ci_only_fails_drops_beyond_the_interval(two_runs):
    _, b, baseline = two_runs
    stored = json.loads(baseline.read_text())
    cell = next(c for c in stored["cells"] if c["dim"] == 16 and c["precision"] == "binary")["metrics"]["ndcg_at_10"]
    inside = (cell["value"] - cell["ci_low"]) / 2
    assert inside > 0.005
    _edit(b, "ndcg_at_10", lambda v: v - inside)
    assert _check(b, baseline, "--metrics", "ndcg_at_10") == 1
    assert _check(b, baseline, "--metrics", "ndcg_at_10", "--outside-ci") == 0


@pytest.mark.parametrize("flags,message", [
    (["--tolerance", "ndcg_at_10=0.1"], "expected METRIC=abs:X"),
    (["--metrics", "ndcg@10"], "unknown metric 'ndcg@10'"),
])  # fmt: skip
def test_usage_errors_exit_2(two_runs, capsys, flags, message):
    _, b, baseline = two_runs
    assert _check(b, baseline, *flags) == 2
    assert message in capsys.readouterr().err


def test_a_run_of_another_grid_is_a_usage_error(two_runs, toy_sweep, toy_tasks_dir, capsys):
    _, _, baseline = two_runs
    other = runner.run(with_overrides(load_config(toy_sweep), dims=(32, 8)), toy_tasks_dir, run_id="c")
    assert _check(other, baseline) == 2
    assert "different configurations" in capsys.readouterr().err


# --------------------------------------------------------------------------- the paired test


@pytest.fixture
def paired(tmp_path):
    """Two identical runs of a 40-query generated task and a baseline of the first."""
    tasks = tmp_path / "tasks"
    write_beir_task(tasks, "Gen", *synthetic_task(n_queries=40, n_docs=80, seed=3))
    write_models(tasks, {"toy": TOY_MODEL})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("models: [toy]\ntasks: [Gen]\nbackends: [hashing]\ndims: [32, 16]\n"
                     "precisions: [float32, int8, binary]\ntop_k: 20\nmeasure: false\nbootstrap_resamples: 200\n"
                     f"output_dir: {tmp_path / 'results'}\ncache_dir: {tmp_path / 'cache'}\n")  # fmt: skip
    a = runner.run(load_config(sweep), tasks, run_id="a")
    b = runner.run(load_config(sweep), tasks, run_id="b")
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(a), "-o", str(baseline)]) == 0
    return b, baseline


def _set_scores(run_dir, fn, precision="float32", dim=32) -> tuple[np.ndarray, np.ndarray]:
    """Replace one cell's per-query main scores by ``fn(scores)`` and its row's means to match."""
    per_query, rows = pd.read_parquet(run_dir / PER_QUERY), pd.read_parquet(run_dir / ROWS)
    mask = (per_query.precision == precision) & (per_query.dim == dim)
    before = per_query.loc[mask, "ndcg_at_10"].to_numpy()
    per_query.loc[mask, "ndcg_at_10"] = fn(before.copy())
    row = (rows.precision == precision) & (rows.dim == dim)
    rows.loc[row, ["ndcg_at_10", "main_score"]] = per_query.loc[mask, "ndcg_at_10"].mean()
    per_query.to_parquet(run_dir / PER_QUERY, index=False)
    rows.to_parquet(run_dir / ROWS, index=False)
    return before, per_query.loc[mask, "ndcg_at_10"].to_numpy()


def _finding(run_dir, precision="float32", dim=32) -> dict:
    findings = json.loads((run_dir / "check.json").read_text())["findings"]
    return next(f for f in findings if f["precision"] == precision and f["dim"] == dim)


def test_a_uniform_drop_of_0_02_on_every_query_fails(paired, capsys):
    run, baseline = paired
    _set_scores(run, lambda s: s - 0.02)
    assert _check(run, baseline) == 1
    out = capsys.readouterr().out
    assert "❌ 1 regression(s)" in out and "beyond the tolerance, significant (paired)" in out
    found = _finding(run)
    assert found["worse_by"] == pytest.approx(0.02) and found["n_queries"] == 40
    assert found["p_holm"] < 0.05 and found["hard_limit"] == 0.03  # not the hard limit: the test caught it
    # the weaker, unpaired rule lets the same drop through: it stays inside the baseline's interval
    assert _check(run, baseline, "--outside-ci") == 0


def test_a_permutation_of_per_query_scores_with_the_same_mean_passes(paired, capsys):
    run, baseline = paired
    before, after = _set_scores(run, lambda s: np.random.default_rng(1).permutation(s))
    assert (before != after).sum() >= 20 and after.mean() == pytest.approx(before.mean(), abs=1e-12)
    assert _check(run, baseline) == 0
    assert "✅ no regressions" in capsys.readouterr().out
    assert _finding(run)["p_value"] > 0.05


def test_a_drop_beyond_the_tolerance_on_one_query_is_not_significant(paired):
    run, baseline = paired

    def one_query(s):
        s[np.argmax(s)] -= 0.3  # mean drop 0.0075 > 0.005, but one query alone proves nothing
        return s

    _set_scores(run, one_query)
    assert _check(run, baseline) == 0
    found = _finding(run)
    assert found["worse_by"] == pytest.approx(0.0075) and found["p_value"] > 0.5 and not found["regressed"]


def test_a_drop_beyond_the_hard_limit_fails_without_significance(paired, capsys):
    run, baseline = paired

    def two_queries(s):
        top = np.argsort(s)[-2:]
        s[top] = 0.0
        return s

    before, after = _set_scores(run, two_queries)
    assert before.mean() - after.mean() > 0.03
    assert _check(run, baseline) == 1
    found = _finding(run)
    assert found["reason"] == "beyond the hard limit" and found["p_value"] > 0.05
    assert _check(run, baseline, "--hard-limit", "main_score=abs:0.2") == 0


def test_a_run_of_other_queries_is_a_usage_error(paired, capsys):
    run, baseline = paired
    per_query = pd.read_parquet(run / PER_QUERY)
    per_query.loc[per_query.query_id == "q000", "query_id"] = "q999"
    per_query.to_parquet(run / PER_QUERY, index=False)
    assert _check(run, baseline) == 2
    assert "the run scored other queries than the baseline (40 and 40, 39 shared)" in capsys.readouterr().err


def test_the_same_grid_listed_in_another_order_is_the_same_grid(two_runs, toy_sweep, toy_tasks_dir, capsys):
    _, _, baseline = two_runs
    config = with_overrides(load_config(toy_sweep), bootstrap_resamples=200)
    reordered = with_overrides(config, dims=tuple(reversed(config.dims)), precisions=tuple(reversed(config.precisions)))
    run_dir = runner.run(reordered, toy_tasks_dir, run_id="reordered")
    assert _check(run_dir, baseline) == 0, capsys.readouterr().err
    assert "18 cells" in capsys.readouterr().out


def test_encode_costs_are_gated_where_a_cell_has_an_encoder_and_lexical_cells_are_left_out(toy_sweep, toy_tasks_dir,
                                                                                           tmp_path, capsys):  # fmt: skip
    config = with_overrides(load_config(toy_sweep), bootstrap_resamples=100, lexical=("bm25",))
    a = runner.run(config, toy_tasks_dir, run_id="a")
    b = runner.run(config, toy_tasks_dir, run_id="b")
    assert main(["baseline", str(a), "-o", str(tmp_path / "baseline.json")]) == 0
    assert _check(b, tmp_path / "baseline.json", "--metrics", "main_score,query_latency_p95_ms") == 0
    out = capsys.readouterr().out
    assert "19 cells" in out and "37 metric comparisons" in out  # 19 main scores, 18 latencies (bm25 has none)
    _edit(b, "query_latency_p95_ms", lambda v: v * 3)
    assert _check(b, tmp_path / "baseline.json", "--metrics", "main_score,query_latency_p95_ms") == 1
