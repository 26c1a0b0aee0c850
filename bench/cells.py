"""The columns that identify a cell in result tables, and which cell is the reference of a group.

A cell is one (model, task, backend, dimension, precision, rescore multiplier, context); a group is
the cells of one (model, task, backend, context): each way of embedding chunks has its own float32
reference, and ``bench.stats.context_comparisons`` pairs each cell with its ``independent`` twin. The reference of a group is its float32 cell at the widest
dimension; the torch reference of a (model, task) is that cell on the float32 torch backend.
A lexical baseline (``bench.lexical``) is a group of one cell with no float32 reference: tables
compare it with each dense group's reference of the same task.
"""

from __future__ import annotations

import pandas as pd

CELL_KEYS = ("model", "task", "backend", "dim", "precision", "rescore_multiplier", "context")
GROUP_KEYS = ("model", "task", "backend", "context")
DEFAULT_CONTEXT = "independent"  # the context of rows and baselines written before contexts existed
REFERENCE_BACKENDS = ("torch-cpu-float32", "torch-cuda-float32")


def reference_rows(rows: pd.DataFrame, group: tuple[str, ...] = GROUP_KEYS) -> pd.DataFrame:
    """Per group, the row of the float32 cell at the widest dimension (indexed by the group)."""
    floats = rows[rows.precision == "float32"].sort_values("dim", kind="stable")
    return floats.groupby(list(group), sort=True).tail(1).set_index(list(group))


def reference_scores(rows: pd.DataFrame) -> pd.Series:
    """Per row, the main score of its group's reference cell."""
    ref = reference_rows(rows).main_score
    return rows.join(ref.rename("reference"), on=list(GROUP_KEYS))["reference"]


def retention(scores, references):
    """Score over its reference's score; NaN (shown as "–") where the reference is not above 0,
    where retention means nothing (a 0.0 reference would read as inf% or nan%)."""
    if isinstance(references, pd.Series):
        return scores / references.where(references > 0)
    return float(scores) / float(references) if references > 0 else float("nan")


def retention_text(value) -> str:
    """A retention as a table shows it: ``97.3%``, or "–" where it is undefined."""
    return "–" if value is None or pd.isna(value) else f"{100 * value:.1f}%"


def torch_reference_scores(rows: pd.DataFrame) -> pd.Series:
    """Per row, the float32 full-width main score of the model on the float32 torch backend
    (what bf16 or int8 weights are measured against); NaN when that backend is not swept."""
    present = [b for b in REFERENCE_BACKENDS if b in set(rows.backend)]
    if not present:
        return pd.Series(float("nan"), index=rows.index)
    ref = reference_rows(rows[rows.backend == present[0]], ("model", "task", "context")).main_score
    return rows.join(ref.rename("reference"), on=["model", "task", "context"])["reference"]


def cell_label(precision: str, rescore_multiplier: int) -> str:
    """How tables and plots name a cell's precision: rescoring cells carry their multiplier."""
    return f"{precision} ×{int(rescore_multiplier)}" if rescore_multiplier else str(precision)


def with_context(frame: pd.DataFrame) -> pd.DataFrame:
    """A result table with its ``context`` column (tables written before contexts had none)."""
    if "context" not in frame.columns:
        frame = frame.assign(context=DEFAULT_CONTEXT)
    return frame


def is_lexical(rows: pd.DataFrame) -> pd.Series:
    """Rows of lexical baselines (they have no dimensions: dim 0)."""
    return rows.dim == 0

