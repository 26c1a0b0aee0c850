"""Statistics over per-query scores: bootstrap confidence intervals and paired comparisons.

Every interval is a percentile bootstrap over queries; every comparison of two cells on the same
task is paired by query (the mean difference, its paired-bootstrap interval, and a two-sided
sign-flip permutation p-value from ``PERMUTATIONS`` random sign flips). A table of comparisons
is one family: its p-values are adjusted with Holm's step-down method (``holm``) before a cell is
called significant. All are seeded, so they reproduce exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Sign flips behind each p-value: the smallest p is 1 / (PERMUTATIONS + 1) = 0.0001, so Holm's
# correction can still find a difference significant at 0.05 in a family of up to 500 cells
# (with 1,000 flips, a table of 50 cells could never show one).
PERMUTATIONS = 9_999
ALPHA = 0.05  # the significance level of every mark and of the gate's paired test


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap resamples of ``n`` queries: (resamples, n) indices, the same for a given seed."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(values: np.ndarray, indices: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` over the given resamples."""
    means = np.asarray(values, dtype=np.float64)[indices].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_cis(values: np.ndarray, indices: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of the mean of every column of ``values`` (queries x metrics) over the
    given resamples, all at once: each resample's means are its draw counts times the values."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.stack([np.bincount(row, minlength=len(values)) for row in indices]).astype(np.float64)
    means = counts @ values / len(values)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


@dataclass(frozen=True)
class PairedComparison:
    """Cell ``a`` against cell ``b`` on the same queries (``a - b``)."""

    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_queries: int

    def significantly_worse(self, alpha: float = ALPHA) -> bool:
        """Unadjusted: for one comparison on its own (a family uses ``holm`` first)."""
        return self.p_value < alpha and self.mean_difference < 0


def paired_comparison(a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0,
                      level: float = 0.95, permutations: int = PERMUTATIONS) -> PairedComparison:  # fmt: skip
    """Mean difference of paired per-query scores, its bootstrap interval and a permutation p-value."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(diff) == 0 or not np.isfinite(diff).all():
        raise ValueError("a paired comparison needs at least one query and finite scores on both sides")
    n = len(diff)
    observed = float(diff.mean())
    low, high = bootstrap_ci(diff, resample_indices(n, resamples, seed), level)
    return PairedComparison(observed, low, high, sign_flip_p_value(diff, permutations, seed + 1), n)


def sign_flip_p_value(diff: np.ndarray, permutations: int, seed: int, chunk: int = 1000) -> float:
    """Two-sided p-value of a mean paired difference: the share of random sign flips of the
    per-query differences whose mean is at least as far from 0 (drawn in chunks, so memory stays
    bounded on tasks with many queries)."""
    rng, target = np.random.default_rng(seed), abs(float(diff.mean())) - 1e-12
    extreme, done = 0, 0
    while done < permutations:
        size = min(chunk, permutations - done)
        signs = rng.integers(0, 2, size=(size, len(diff)), dtype=np.int8) * 2.0 - 1.0
        extreme += int(np.count_nonzero(np.abs(signs @ diff) / len(diff) >= target))
        done += size
    return (extreme + 1) / (permutations + 1)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (same order as given): the i-th smallest
    of m is multiplied by (m - i), made monotone, capped at 1. A cell is significant at ``ALPHA``
    when its adjusted p is below it; the chance of any false mark in the family is then at most
    ``ALPHA``."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [1.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def interval_table(per_query, metrics: list[str], resamples: int, seed: int):
    """Tidy CIs: one row per (cell, metric) with mean, ci_low, ci_high (a pandas DataFrame)."""
    import pandas as pd

    from bench.cells import CELL_KEYS

    out = []
    for key, frame in per_query.groupby(list(CELL_KEYS), sort=True):
        values = frame.sort_values("query_id")[metrics].to_numpy(dtype=np.float64)
        lows, highs = bootstrap_cis(values, resample_indices(len(values), resamples, seed))
        for j, metric in enumerate(metrics):
            out.append({**dict(zip(CELL_KEYS, key)), "metric": metric, "mean": float(values[:, j].mean()),
                        "ci_low": float(lows[j]), "ci_high": float(highs[j])})  # fmt: skip
    return pd.DataFrame(out)


COMPARISON_COLUMNS = ("vs_reference_difference", "vs_reference_ci_low", "vs_reference_ci_high",
                      "vs_reference_p_value", "vs_reference_p_holm")  # fmt: skip


def table_comparisons(per_query, frame, lexical, resamples: int, seed: int):
    """The comparisons of one table: each cell of one (model, task, backend) group and each lexical
    baseline of that task (``lexical``) against the group's float32 full-dimension cell, paired by
    query on the main score. The cells compared form one family: ``vs_reference_p_holm`` is the
    Holm-adjusted p-value (the reference itself gets difference 0 and p 1, outside the family).
    A pandas DataFrame: the cell keys and ``COMPARISON_COLUMNS``."""
    import pandas as pd

    from bench.cells import CELL_KEYS, reference_rows

    ref = reference_rows(frame).reset_index().iloc[0]
    out = []
    for _, row in pd.concat([frame, lexical]).iterrows():
        cmp = compare_cells(per_query, row, ref, ref.main_score_name, resamples, seed)
        is_ref = all(row[k] == ref[k] for k in CELL_KEYS)
        out.append({**{k: row[k] for k in CELL_KEYS}, "vs_reference_difference": cmp.mean_difference,
                    "vs_reference_ci_low": cmp.ci_low, "vs_reference_ci_high": cmp.ci_high,
                    "vs_reference_p_value": cmp.p_value, "reference": is_ref})  # fmt: skip
    table = pd.DataFrame(out, columns=[*CELL_KEYS, *COMPARISON_COLUMNS[:4], "reference"])
    family = ~table.reference.astype(bool)
    table["vs_reference_p_holm"] = 1.0
    table.loc[family, "vs_reference_p_holm"] = holm(list(table.loc[family, "vs_reference_p_value"]))
    return table.drop(columns="reference")


def reference_comparisons(per_query, rows, resamples: int, seed: int):
    """Each dense cell's main score against its group's float32 full-dimension cell, paired by
    query, Holm-adjusted over its table (``table_comparisons``: the group's cells and the task's
    lexical baselines); ``significantly_worse`` uses the adjusted p. Lexical baselines (no float32
    reference of their own) get no row here."""
    import pandas as pd

    from bench.cells import CELL_KEYS, GROUP_KEYS, is_lexical, reference_rows

    out, lexical = [], rows[is_lexical(rows)]
    dense = rows[~is_lexical(rows)]
    references = reference_rows(dense)
    for group_key, group in dense.groupby(list(GROUP_KEYS), sort=True):
        if group_key not in references.index:
            continue
        table = table_comparisons(per_query, group, lexical[lexical.task == group_key[1]], resamples, seed)
        out.append(table.merge(group[list(CELL_KEYS)], on=list(CELL_KEYS)))
    columns = [*CELL_KEYS, *COMPARISON_COLUMNS, "significantly_worse"]
    if not out:
        return pd.DataFrame(columns=columns)
    table = pd.concat(out, ignore_index=True)
    table["significantly_worse"] = (table.vs_reference_p_holm < ALPHA) & (table.vs_reference_difference < 0)
    return table[columns]


CONTEXT_COLUMNS = ("vs_independent_difference", "vs_independent_ci_low", "vs_independent_ci_high",
                   "vs_independent_p_value", "vs_independent_p_holm")


def context_comparisons(per_query, rows, resamples: int, seed: int):
    """Each cell embedded in a context other than ``independent`` against the same cell (model, task,
    backend, dimension, precision, multiplier) with its chunks embedded alone: the paired mean
    difference of the main score per query, its paired-bootstrap interval and permutation p-value,
    and that p-value Holm-adjusted over the cells of one (model, task, backend, context), the family
    one table shows. Cells without such a twin in the run get no row here."""
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
    table = pd.DataFrame(out, columns=[*CELL_KEYS, *CONTEXT_COLUMNS[:4]])
    table["vs_independent_p_holm"] = 1.0
    for _, family in table.groupby(["model", "task", "backend", "context"], sort=False):
        table.loc[family.index, "vs_independent_p_holm"] = holm(list(family.vs_independent_p_value))
    return table


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
