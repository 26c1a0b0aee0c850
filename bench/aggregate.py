"""MTEB's aggregate score of a task, from result rows only.

MTEB's ``TaskResult.get_score()`` is the unweighted mean of ``main_score`` over every
(split, subset) entry of a task, whatever each entry's number of queries. Here: per
(model, task name, backend, dimension, precision), the mean of the rows' main scores.
"""

from __future__ import annotations

import pandas as pd

from bench.errors import InputError

AGGREGATE_KEYS = ("model", "task_name", "backend", "dim", "precision", "rescore_multiplier", "context")


def task_aggregates(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, task name, backend, dim, precision, rescore multiplier): the main score's
    name, MTEB's aggregate (``main_score``), how many (split, subset) entries it averages, and which."""
    keys = [k for k in AGGREGATE_KEYS if k in rows.columns]
    names = rows.groupby(keys, sort=True).main_score_name.nunique()
    if (names > 1).any():
        key = names[names > 1].index[0]
        raise InputError(f"task {key[1]} has rows scored on different main scores; they cannot be aggregated")
    return rows.groupby(keys, sort=True).agg(
        main_score_name=("main_score_name", "first"), main_score=("main_score", _mean),
        entries=("main_score", "size"), splits=("split", _joined), subsets=("subset", _joined),
    ).reset_index()  # fmt: skip


def _mean(values: pd.Series) -> float:
    """MTEB's ``np.mean`` over every entry: one entry without a number leaves the aggregate
    without one (pandas would skip it and still count it)."""
    return float(values.mean(skipna=False))


def _joined(values: pd.Series) -> str:
    return ",".join(dict.fromkeys(str(v) for v in values))
