"""Statistics over per-query scores: bootstrap confidence intervals and paired comparisons.

Every interval is a percentile bootstrap over queries; every comparison of two cells on the same
task is paired by query (the mean difference, its paired-bootstrap interval, and a two-sided
sign-flip permutation p-value). All are seeded, so they reproduce exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap resamples of ``n`` queries: (resamples, n) indices, the same for a given seed."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(values: np.ndarray, indices: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` over the given resamples."""
    means = np.asarray(values, dtype=np.float64)[indices].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedComparison:
    """Cell ``a`` against cell ``b`` on the same queries (``a - b``)."""

    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_queries: int

    def significantly_worse(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha and self.mean_difference < 0


def paired_comparison(a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> PairedComparison:  # fmt: skip
    """Mean difference of paired per-query scores, its bootstrap interval and a permutation p-value."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(diff)
    observed = float(diff.mean())
    low, high = bootstrap_ci(diff, resample_indices(n, resamples, seed), level)
    signs = np.random.default_rng(seed + 1).choice((-1.0, 1.0), size=(resamples, n))
    flipped = np.abs((signs * diff).mean(axis=1))
    extreme = int(np.count_nonzero(flipped >= abs(observed) - 1e-12))
    return PairedComparison(observed, low, high, (extreme + 1) / (resamples + 1), n)


def interval_table(per_query, metrics: list[str], resamples: int, seed: int):
    """Tidy CIs: one row per (cell, metric) with mean, ci_low, ci_high (a pandas DataFrame)."""
    import pandas as pd

    from bench.cells import CELL_KEYS

    out = []
    for key, frame in per_query.groupby(list(CELL_KEYS), sort=True):
        frame = frame.sort_values("query_id")
        idx = resample_indices(len(frame), resamples, seed)
        for metric in metrics:
            values = frame[metric].to_numpy(dtype=np.float64)
            low, high = bootstrap_ci(values, idx)
            out.append({**dict(zip(CELL_KEYS, key)), "metric": metric, "mean": float(values.mean()),
                        "ci_low": low, "ci_high": high})  # fmt: skip
    return pd.DataFrame(out)


def reference_comparisons(per_query, rows, resamples: int, seed: int):
    """Each cell's main score against its group's float32 full-dimension cell, paired by query.
    Groups without such a cell (lexical baselines) get no row here."""
    import pandas as pd

    from bench.cells import CELL_KEYS, GROUP_KEYS, reference_rows

    out, references = [], reference_rows(rows)
    for group_key, group in rows.groupby(list(GROUP_KEYS), sort=True):
        if group_key not in references.index:
            continue
        ref = references.loc[group_key]
        ref_cell = {**dict(zip(GROUP_KEYS, group_key)), "dim": ref.dim, "precision": ref.precision,
                    "rescore_multiplier": ref.rescore_multiplier}  # fmt: skip
        for _, row in group.iterrows():
            cmp = compare_cells(per_query, row, ref_cell, ref.main_score_name, resamples, seed)
            out.append({**{k: row[k] for k in CELL_KEYS}, "vs_reference_difference": cmp.mean_difference,
                        "vs_reference_ci_low": cmp.ci_low, "vs_reference_ci_high": cmp.ci_high,
                        "vs_reference_p_value": cmp.p_value, "significantly_worse": cmp.significantly_worse()})  # fmt: skip
    return pd.DataFrame(out, columns=[*CELL_KEYS, "vs_reference_difference", "vs_reference_ci_low",
                                      "vs_reference_ci_high", "vs_reference_p_value", "significantly_worse"])  # fmt: skip


CONTEXT_COLUMNS = ("vs_independent_difference", "vs_independent_ci_low", "vs_independent_ci_high",
                   "vs_independent_p_value")


def context_comparisons(per_query, rows, resamples: int, seed: int):
    """Each cell embedded in a context other than ``independent`` against the same cell (model, task,
    backend, dimension, precision, multiplier) with its chunks embedded alone: the paired mean
    difference of the main score per query, its paired-bootstrap interval and permutation p-value.
    Cells without such a twin in the run get no row here."""
    import pandas as pd

    from bench.cells import CELL_KEYS

    twin_keys = [k for k in CELL_KEYS if k != "context"]
    alone = rows[rows.context == "independent"].set_index(twin_keys)
    out = []
    for _, row in rows[rows.context != "independent"].iterrows():
        key = tuple(row[k] for k in twin_keys)
        if key not in alone.index:
            continue
        twin = {**dict(zip(twin_keys, key)), "context": "independent"}
        cmp = compare_cells(per_query, row, twin, row.main_score_name, resamples, seed)
        out.append({**{k: row[k] for k in CELL_KEYS},
                    **dict(zip(CONTEXT_COLUMNS, (cmp.mean_difference, cmp.ci_low, cmp.ci_high, cmp.p_value)))})  # fmt: skip
    return pd.DataFrame(out, columns=[*CELL_KEYS, *CONTEXT_COLUMNS])


def cell_scores(per_query, cell, metric: str):
    """One cell's per-query ``metric``, indexed by query id (``cell``: a row with the cell keys)."""
    from bench.cells import CELL_KEYS

    mask = np.ones(len(per_query), dtype=bool)
    for key in CELL_KEYS:
        mask &= (per_query[key] == cell[key]).to_numpy()
    return per_query[mask].set_index("query_id")[metric].sort_index()


def compare_cells(per_query, a, b, metric: str, resamples: int, seed: int) -> PairedComparison:
    """Cell ``a`` against cell ``b`` on ``metric``, paired by query (over ``b``'s queries)."""
    base = cell_scores(per_query, b, metric)
    cell = cell_scores(per_query, a, metric)
    return paired_comparison(cell.reindex(base.index).to_numpy(), base.to_numpy(), resamples, seed)
