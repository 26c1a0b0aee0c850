"""Model size as an axis of every report: each row's parameter count and where it came from.

The count is the registry's (``n_parameters`` in ``tasks/models.yaml``, the published figure)
when it declares one, else the encoder's own measurement (``n_parameters`` of the cost columns:
parameters as the backend runs them), else unknown. Lexical baselines have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench.cells import is_lexical

SOURCES = ("registry", "measured")


def _positive(value: Any) -> int | None:
    """A count, or None for missing, NaN, zero (an encoder that cannot tell reports 0) or negative."""
    if value is None or pd.isna(value):
        return None
    value = int(value)
    return value if value > 0 else None


def resolve(registry: Any, measured: Any) -> tuple[int | None, str | None]:
    """(parameters, source): the registry's count first, then the measured one."""
    for value, source in zip((_positive(registry), _positive(measured)), SOURCES):
        if value is not None:
            return value, source
    return None, None


def with_parameters(rows: pd.DataFrame, manifest: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """``rows`` with ``parameters`` and ``parameters_source`` columns. Runs written before these
    columns existed get them from their manifest's model specs (the registry's count) and their
    measured ``n_parameters``."""
    rows = rows.copy()
    if "registry_parameters" not in rows.columns:
        models = (manifest or {}).get("models", {})
        rows["registry_parameters"] = [models.get(m, {}).get("n_parameters") for m in rows.model]
    measured = rows["n_parameters"] if "n_parameters" in rows.columns else pd.Series(None, index=rows.index)
    pairs = [resolve(r, m) for r, m in zip(rows.registry_parameters, measured)]
    lexical = is_lexical(rows).to_numpy()
    rows["parameters"] = pd.array([None if lex else p for (p, _), lex in zip(pairs, lexical)], dtype="Int64")
    rows["parameters_source"] = [None if lex else s for (_, s), lex in zip(pairs, lexical)]
    rows["registry_parameters"] = pd.array([_positive(v) for v in rows.registry_parameters], dtype="Int64")
    return rows
