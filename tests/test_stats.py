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
