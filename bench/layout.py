"""How reports lay out cells: dense groups, precision variants in registry order, and the names
tables and plots give to cells, metrics and columns. Shared by tables, plots, HTML and compare."""

from __future__ import annotations

import re

import pandas as pd

from bench import precisions
from bench.cells import DEFAULT_CONTEXT, GROUP_KEYS, cell_label, is_lexical
from bench.names import file_stem

GROUP = list(GROUP_KEYS)
PRECISION_ORDER = precisions.names()


def group_stem(key: dict) -> str:
    """The file-name stem of a group's plots: names joined as they are when plain, otherwise made
    safe with a digest (``bench.names.file_stem``), so no name can place a plot outside ``plots/``.
    Groups of the default context keep the names they had before contexts existed."""
    return file_stem(*(key[k] for k in GROUP if k != "context" or key[k] != DEFAULT_CONTEXT))


def group_title(key: dict) -> str:
    """``model on task (backend[, context])`` for plot titles."""
    context = f", context {key['context']}" if key.get("context", DEFAULT_CONTEXT) != DEFAULT_CONTEXT else ""
    return f"{key['model']} on {key['task']} ({key['backend']}{context})"


def has_contexts(rows: pd.DataFrame) -> bool:
    """Whether some row has another context than the default (tables then show the column)."""
    return "context" in rows.columns and bool((rows.context.dropna() != DEFAULT_CONTEXT).any())


def shown_group(rows: pd.DataFrame) -> list[str]:
    """The group columns a table shows: ``context`` only where some row has another than the default."""
    if has_contexts(rows):
        return GROUP
    return [k for k in GROUP if k != "context"]


def groups(rows: pd.DataFrame):
    """Dense (model, task, backend, context) groups; lexical baselines are shown inside their task's groups."""
    for key, frame in rows[~is_lexical(rows)].groupby(GROUP, sort=True):
        yield dict(zip(GROUP, key)), frame


def context_pairs(rows: pd.DataFrame):
    """Per (model, task, backend) and context other than independent: (key, that context's cells,
    the independent cells) wherever the run holds both."""
    dense = rows[~is_lexical(rows)]
    keys = ["model", "task", "backend"]
    for key, frame in dense.groupby(keys, sort=True):
        alone = frame[frame.context == DEFAULT_CONTEXT]
        for context, cells in frame[frame.context != DEFAULT_CONTEXT].groupby("context", sort=True):
            if not alone.empty and "vs_independent_p_value" in cells.columns:
                yield dict(zip(keys, key), context=context), cells, alone


def variants(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, cells) per precision variant, in registry order, then by rescore multiplier."""
    order = {name: i for i, name in enumerate(PRECISION_ORDER)}
    keys = sorted({(p, int(m)) for p, m in zip(frame.precision, frame.rescore_multiplier)},
                  key=lambda pm: (order.get(pm[0], len(order)), pm[0], pm[1]))  # fmt: skip
    return [(cell_label(p, m), frame[(frame.precision == p) & (frame.rescore_multiplier == m)]) for p, m in keys]


def point_label(row: pd.Series, with_model: bool = False) -> str:
    """``precision ×m@dim`` for a cell; the model name for a lexical baseline."""
    if row.dim == 0:
        return str(row.model)
    text = f"{cell_label(row.precision, row.rescore_multiplier)}@{row.dim}"
    context = f" ({row.context})" if row.get("context", DEFAULT_CONTEXT) != DEFAULT_CONTEXT else ""
    return f"{row.model}{context}: {text}" if with_model else text


_FAMILY_NAMES = {"ndcg": "nDCG", "map": "MAP", "recall": "Recall", "precision": "Precision", "mrr": "MRR",
                 "hit_rate": "Hit rate"}  # fmt: skip


def metric_label(name: str) -> str:
    """A metric as papers write it: ``ndcg_at_10`` -> ``nDCG@10``; other names unchanged."""
    match = re.fullmatch(r"([a-z_]+)_at_(\d+)", str(name))
    if match and match.group(1) in _FAMILY_NAMES:
        return f"{_FAMILY_NAMES[match.group(1)]}@{match.group(2)}"
    return str(name)


def score_label(frame: pd.DataFrame) -> str:
    """The main score's name(s) in a frame, for axis labels and headings (``nDCG@10``)."""
    names = sorted(set(frame.main_score_name.dropna()))
    return " / ".join(metric_label(n) for n in names) if names else "main score"


# Result columns as tables name them; a column with a unit says the unit its cells show.
COLUMN_NAMES = {
    "model": "model", "task": "task", "backend": "backend", "dim": "dimension", "precision": "precision",
    "rescore_multiplier": "rescore ×", "bytes_per_vector": "bytes/vector", "index_bytes": "index bytes",
    "main_score_name": "main score", "main_score": "score", "retention": "retention",
    "search_queries_per_second": "search queries/s", "search_latency_p50_ms": "search p50 (ms)",
    "search_latency_p95_ms": "search p95 (ms)", "documents_per_second": "docs/s", "tokens_per_second": "tokens/s",
    "query_latency_p50_ms": "query p50 (ms)", "query_latency_p95_ms": "query p95 (ms)",
    "peak_rss_bytes": "peak RSS (MiB)", "peak_cuda_bytes": "peak CUDA (MiB)", "load_seconds": "load (s)",
    "parameters": "parameters", "context": "context",
}  # fmt: skip


def column_name(column: str) -> str:
    """The human name of a result column (a metric as ``metric_label`` writes it)."""
    return COLUMN_NAMES.get(column, metric_label(column))


def blank_repeats(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` as text with each of ``columns`` left empty where it repeats the row above (the
    leading columns of a table: a model, task or backend is shown once, not on every row)."""
    out = frame.astype(object).copy()
    previous: tuple = ()
    for i, (_, row) in enumerate(frame.iterrows()):
        current = tuple(row[c] for c in columns)
        for j, column in enumerate(columns):
            if i and current[: j + 1] == previous[: j + 1]:
                out.iloc[i, out.columns.get_loc(column)] = ""
        previous = current
    return out
