import numpy as np
import pytest

from bench.stats import bootstrap_ci, paired_comparison, resample_indices


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(0).random(300)
    a = bootstrap_ci(values, resample_indices(300, 2000, seed=7))
    b = bootstrap_ci(values, resample_indices(300, 2000, seed=7))
    assert a == b and a[0] < values.mean() < a[1]
    # the width shrinks like 1/sqrt(n): about 2 * 1.96 * sd / sqrt(n)
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * values.std() / np.sqrt(300), rel=0.15)


def test_identical_cells_are_not_different():
    values = np.random.default_rng(1).random(200)
    cmp = paired_comparison(values, values.copy())
    assert cmp.mean_difference == 0 and cmp.p_value == 1.0 and not cmp.significantly_worse()


def test_a_consistently_worse_cell_is_significant_and_a_noisy_one_is_not():
    rng = np.random.default_rng(2)
    ref = rng.random(300)
    worse = paired_comparison(ref - 0.02 - 0.01 * rng.random(300), ref)
    assert worse.significantly_worse() and worse.ci_high < 0 and worse.p_value < 0.01
    noisy = paired_comparison(ref + rng.normal(0, 0.2, 300), ref)
    assert noisy.ci_low < 0 < noisy.ci_high and not noisy.significantly_worse()


def test_holm_adjusts_a_family_step_down():
    from bench.stats import holm

    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_p_values_resolve_a_family_of_sixty_clearly_worse_cells():
    """With 1,000 sign flips the smallest p is 1/1001, and Holm over 60 cells needs p < 0.05/60:
    nothing could ever be marked. The p-values use ``PERMUTATIONS`` flips instead."""
    from bench.stats import PERMUTATIONS, holm

    rng = np.random.default_rng(3)
    ref = rng.random(300)
    p_values = [paired_comparison(ref - 0.05 - 0.01 * rng.random(300), ref, seed=i).p_value for i in range(60)]
    assert PERMUTATIONS >= 9_999 and max(p_values) == pytest.approx(1 / (PERMUTATIONS + 1))
    assert all(p < 0.05 for p in holm(p_values))
    with pytest.raises(ValueError):
        paired_comparison(np.array([np.nan]), np.array([0.5]))


def _holm_by_hand(p):
    """Holm's adjusted p-values, written out independently of bench.stats.holm."""
    m, order = len(p), np.argsort(p, kind="stable")
    adjusted, running = np.empty(m), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_a_runs_marks_are_holm_adjusted_over_each_table(tmp_path):
    """The family of a table is its cells (the reference excluded) and the task's lexical baselines;
    rows store the adjusted p and ``significantly_worse`` follows it."""
    from bench import runner, stats
    from bench.config import load_config
    from bench.results import read_per_query, read_run
    from bench.testing import synthetic_task, write_beir_task, write_models
    from tests.conftest import TOY_MODEL

    tasks = tmp_path / "tasks"
    write_beir_task(tasks, "Gen", *synthetic_task(n_queries=40, n_docs=80, seed=7))
    write_models(tasks, {"toy": TOY_MODEL})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("models: [toy]\ntasks: [Gen]\nbackends: [hashing]\ndims: [32, 16, 8]\n"
                     "precisions: [float32, int8, binary]\nlexical: [bm25]\ntop_k: 20\nmeasure: false\n"
                     f"bootstrap_resamples: 100\noutput_dir: {tmp_path / 'r'}\ncache_dir: {tmp_path / 'c'}\n")  # fmt: skip
    run = runner.run(load_config(sweep), tasks, run_id="x")
    _, rows = read_run(run)
    dense = rows[rows.dim > 0].reset_index(drop=True)
    ref = dense[(dense.dim == 32) & (dense.precision == "float32")].iloc[0]
    lex = rows[rows.dim == 0].iloc[0]
    lex_p = stats.compare_cells(read_per_query(run), lex, ref, "ndcg_at_10", 100, 0).p_value
    family = dense.index[~((dense.dim == 32) & (dense.precision == "float32"))]
    expected = _holm_by_hand(np.array([*dense.loc[family, "vs_reference_p_value"], lex_p]))[:-1]
    assert np.allclose(dense.loc[family, "vs_reference_p_holm"], expected)
    assert ref.vs_reference_p_holm == 1.0
    worse = (dense.vs_reference_p_holm < 0.05) & (dense.vs_reference_difference < 0)
    assert (dense.significantly_worse == worse).all() and worse.any()


def test_a_table_marks_the_adjusted_p_not_the_raw_one():
    import pandas as pd

    from bench.report import Comparison, quality_grid

    base = {"model": "m", "task": "t", "backend": "b", "rescore_multiplier": 0, "main_score_name": "ndcg_at_10"}
    frame = pd.DataFrame([
        {**base, "dim": 8, "precision": "float32", "main_score": 0.5, "vs_reference_difference": 0.0,
         "vs_reference_p_value": 1.0, "vs_reference_p_holm": 1.0},
        {**base, "dim": 4, "precision": "float32", "main_score": 0.45, "vs_reference_difference": -0.05,
         "vs_reference_p_value": 0.03, "vs_reference_p_holm": 0.06},  # raw p < 0.05, adjusted not
        {**base, "dim": 2, "precision": "float32", "main_score": 0.3, "vs_reference_difference": -0.2,
         "vs_reference_p_value": 0.0001, "vs_reference_p_holm": 0.0002},
    ])  # fmt: skip
    _, lines = quality_grid(frame, frame.iloc[:0], Comparison(None))
    assert [s.mark for s in lines[0][1]] == ["", "", " ▼"]


def test_the_vectorised_intervals_equal_one_metric_at_a_time():
    from bench.stats import bootstrap_cis

    rng = np.random.default_rng(3)
    values = rng.random((57, 5))
    idx = resample_indices(57, 400, 11)
    lows, highs = bootstrap_cis(values, idx)
    for j in range(5):
        low, high = bootstrap_ci(values[:, j], idx)
        assert lows[j] == pytest.approx(low, abs=1e-12) and highs[j] == pytest.approx(high, abs=1e-12)
