import json

import pandas as pd
import pytest

from bench import runner
from bench.cli import main
from bench.config import load_config, with_overrides
from bench.results import ROWS


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
    assert "✅ no regressions" in out and "18 cells, 774 metric comparisons" in out
    assert json.loads((b / "check.json").read_text())["regressions"] == 0
    stored = json.loads(baseline.read_text())
    assert {"grid_fingerprint", "packages", "cells"} <= set(stored)
    assert {"value", "ci_low", "ci_high"} <= set(stored["cells"][0]["metrics"]["ndcg_at_10"])


def test_a_quality_drop_beyond_tolerance_is_a_regression(two_runs, capsys):
    _, b, baseline = two_runs
    _edit(b, "ndcg_at_10", lambda v: v - 0.01)
    assert _check(b, baseline) == 1
    out = capsys.readouterr().out
    assert "❌ 1 regression(s)" in out and "| toy | Toy | hashing-cpu-float32 | 16 | binary | ndcg_at_10 |" in out
    assert _check(b, baseline, "--tolerance", "ndcg_at_10=abs:0.02") == 0


def test_the_main_score_is_gated_under_its_own_name(two_runs, capsys):
    _, b, baseline = two_runs
    _edit(b, "main_score", lambda v: v - 0.01)
    assert _check(b, baseline) == 1
    assert "| toy | Toy | hashing-cpu-float32 | 16 | binary | main_score |" in capsys.readouterr().out
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
