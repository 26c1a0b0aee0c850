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


def test_the_vectorised_intervals_equal_one_metric_at_a_time():
    from bench.stats import bootstrap_cis

    rng = np.random.default_rng(3)
    values = rng.random((57, 5))
    idx = resample_indices(57, 400, 11)
    lows, highs = bootstrap_cis(values, idx)
    for j in range(5):
        low, high = bootstrap_ci(values[:, j], idx)
        assert lows[j] == pytest.approx(low, abs=1e-12) and highs[j] == pytest.approx(high, abs=1e-12)
