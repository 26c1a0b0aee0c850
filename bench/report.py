"""Tables of a run (``table.md``) and its plots, made from saved result files only (never written
back into them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import cells, figures, layout, names, plots, precisions, results, stats
from bench.aggregate import task_aggregates
from bench.cache import atomic_write_bytes
from bench.cells import CELL_KEYS, DEFAULT_CONTEXT, cell_label, is_lexical, retention, retention_text
from bench.layout import GROUP, blank_repeats, column_name, context_pairs, groups, score_label, shown_group, variants
from bench.modelsize import with_parameters

ALPHA = stats.ALPHA  # significance level of the ▼/▲ marks (after Holm's adjustment over the table)
MARK_NOTE = (f"▼/▲ significantly worse/better than it: paired sign-flip permutation test over the queries, "
             f"p < {ALPHA} after Holm's correction across the cells of this table")  # fmt: skip


@dataclass(frozen=True)
class Shown:
    """One table entry: a cell's main score against its group's float32 full-width reference."""

    score: float
    retention: float
    mark: str  # " ▼" significantly worse, " ▲" significantly better, "" neither
    ci_low: float | None = None
    ci_high: float | None = None


def mark(difference, p_holm) -> str:
    """▼/▲ for a Holm-adjusted p below ``ALPHA``, by the sign of the difference; else nothing."""
    if p_holm is None or pd.isna(p_holm) or p_holm >= ALPHA or difference == 0:
        return ""
    return " ▼" if difference < 0 else " ▲"


@dataclass(frozen=True)
class Comparison:
    """What rendering needs to compare a table's cells with its reference: the run's per-query
    scores and its bootstrap seed and resamples (so a re-render gives the same marks)."""

    per_query: pd.DataFrame | None
    resamples: int = 1000
    seed: int = 0


def table_marks(frame: pd.DataFrame, lexical: pd.DataFrame, cmp: Comparison) -> dict[tuple, tuple]:
    """Per cell key of a table (a group's cells and its task's lexical baselines): (difference,
    Holm-adjusted p) against the group's reference. From the per-query scores when the run has
    them; otherwise the rows' stored columns (lexical baselines then get no mark)."""
    if cmp.per_query is not None:
        table = stats.table_comparisons(cmp.per_query, frame, lexical, cmp.resamples, cmp.seed)
    elif "vs_reference_p_holm" in frame.columns:
        table = frame
    else:
        return {}
    return {tuple(r[k] for k in CELL_KEYS): (r.vs_reference_difference, r.vs_reference_p_holm)
            for _, r in table.iterrows()}  # fmt: skip


def _shown(row: pd.Series, reference_score: float, marks: dict) -> Shown:
    difference, p_holm = marks.get(tuple(row[k] for k in CELL_KEYS), (0.0, None))
    return Shown(float(row.main_score), retention(row.main_score, reference_score), mark(difference, p_holm),
                 row.get("main_score_ci_low"), row.get("main_score_ci_high"))  # fmt: skip


def quality_grid(frame: pd.DataFrame, lexical: pd.DataFrame, cmp: Comparison) -> tuple[list[int], list[tuple[str, list]]]:
    """Dimensions (widest first) and, per precision variant then per lexical baseline, a label and
    one ``Shown`` (or None) per dimension; a lexical baseline fills only the widest column."""
    dims = sorted(frame.dim.unique(), reverse=True)
    marks = table_marks(frame, lexical, cmp)
    ref = frame[(frame.precision == "float32") & (frame.rescore_multiplier == 0)].sort_values("dim").iloc[-1]
    lines = []
    for label, variant_cells in variants(frame):
        by_dim = {int(r.dim): _shown(r, ref.main_score, marks) for _, r in variant_cells.iterrows()}
        lines.append((label, [by_dim.get(int(d)) for d in dims]))
    for _, lex in lexical.iterrows():
        shown = _shown(lex, ref.main_score, marks)
        lines.append((f"{lex.model} (lexical, no dimensions)", [shown] + [None] * (len(dims) - 1)))
    return dims, lines


def pivot_table(frame: pd.DataFrame, lexical: pd.DataFrame | None = None, cmp: Comparison = Comparison(None)) -> str:
    """Markdown: precisions down, dimensions across, ``score (retention %)`` and a mark per cell."""
    lexical = frame.iloc[:0] if lexical is None else lexical
    dims, lines = quality_grid(frame, lexical, cmp)
    out = ["| precision | " + " | ".join(str(d) for d in dims) + " |", "|---|" + "---:|" * len(dims)]
    for label, shown in lines:
        cells = [f"{s.score:.4f} ({retention_text(s.retention)}){s.mark}" if s else "" for s in shown]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def summary_markdown(rows: pd.DataFrame, cmp: Comparison = Comparison(None)) -> str:
    """One pivot per (model, task, backend), headed by what the score is, with the task's
    lexical baselines as extra lines."""
    parts, lexical = [], rows[is_lexical(rows)]
    for key, frame in groups(rows):
        context = f" · context {key['context']}" if key["context"] != DEFAULT_CONTEXT else ""
        parts.append(
            f"### {key['model']} · {key['task']} · {key['backend']}{context}\n\n"
            f"{score_label(frame)} (retention vs float32 at full dimension; {MARK_NOTE}; "
            f"×m: rescoring candidates = top_k × m)\n\n"
            f"{pivot_table(frame, lexical[lexical.task == key['task']], cmp)}\n"
        )
    return "\n".join(parts)


def aggregate_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """MTEB's aggregate (mean main score over splits and subsets) of every task that has more than
    one (split, subset) row, as display text: one line per cell, its precision labelled as in every
    table (a rescoring cell with its ``×m``, a context other than independent after it)."""
    agg = task_aggregates(rows)
    agg = agg[agg.entries > 1]
    records = []
    for _, r in agg.iterrows():
        label = cell_label(r.precision, r.get("rescore_multiplier", 0))
        if r.get("context", DEFAULT_CONTEXT) != DEFAULT_CONTEXT:
            label += f" ({r.context})"
        records.append({"model": r.model, "task": r.task_name, "backend": r.backend, "dimension": r.dim,
                        "precision": label, "main score": r.main_score_name, "aggregate": format_value(r.main_score, "{:.4f}", "main_score"),
                        "entries": r.entries, "splits": r.splits, "subsets": r.subsets})  # fmt: skip
    return pd.DataFrame(records)


def aggregate_table(rows: pd.DataFrame) -> str:
    """Markdown: ``aggregate_frame``; empty when no task has more than one (split, subset) row."""
    return markdown_table(aggregate_frame(rows), left=3)


def format_value(value, template: str, column: str) -> str:
    """A table cell: "–" for a missing value, MiB for a ``*_bytes`` memory column (its header says
    so), a whole number for other byte columns, else ``template``."""
    if value is None or pd.isna(value):
        return "–"
    if column in MIB_COLUMNS:
        return template.format(value / 2**20)
    if column.endswith("_bytes") or column in ("bytes_per_vector", "parameters"):
        return f"{round(float(value)):,}"
    return template.format(value)


MIB_COLUMNS = ("peak_rss_bytes", "peak_cuda_bytes")  # shown in MiB; their headers name the unit
COST_COLUMNS = [
    ("encode_seconds_documents", "corpus encode s", "{:.1f}"),
    ("documents_per_second", "docs/s", "{:.1f}"), ("tokens_per_second", "tokens/s", "{:.0f}"),
    ("query_latency_p50_ms", "query p50 (ms)", "{:.1f}"), ("query_latency_p95_ms", "query p95 (ms)", "{:.1f}"),
    ("peak_rss_bytes", "peak RSS (MiB)", "{:.0f}"), ("peak_cuda_bytes", "peak CUDA (MiB)", "{:.0f}"),
    ("load_seconds", "load (s)", "{:.1f}"), ("parameters", "parameters", "{:,.0f}"),
]  # fmt: skip
SEARCH_COLUMNS = [("bytes_per_vector", "{:,.0f}"), ("index_bytes", "{:,.0f}"), ("search_queries_per_second", "{:,.1f}"),
                  ("search_latency_p50_ms", "{:,.2f}"), ("search_latency_p95_ms", "{:,.2f}")]  # fmt: skip
FULL_COLUMNS = [("bytes_per_vector", "{:,.0f}"), ("main_score_name", "{}"), ("main_score", "{:.4f}"),
                ("ndcg_at_10", "{:.4f}"), ("recall_at_100", "{:.4f}"), ("mrr_at_10", "{:.4f}"),
                ("retention", "{:.4f}")]  # fmt: skip


def cost_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per dense (model, task, backend) with what encoding costs, as display text under
    human column names (model, task and backend shown once where they repeat)."""
    cols = [c for c in COST_COLUMNS if c[0] in rows.columns]
    if not cols:
        return pd.DataFrame()
    first = rows[~is_lexical(rows)].groupby(GROUP, sort=True).first().reset_index()
    keys = shown_group(first)
    out = blank_repeats(first[keys], keys).rename(columns=column_name)
    for column, name, template in cols:
        out[name] = [format_value(v, template, column) for v in first[column]]
    return out


def cell_frame(rows: pd.DataFrame, columns: list[tuple[str, str]]) -> pd.DataFrame:
    """One line per cell: its keys (repeats blanked) and ``columns`` (column, template) as text."""
    cols = [(c, t) for c, t in columns if c in rows.columns]
    keys = shown_group(rows)
    out = blank_repeats(rows[keys], keys).rename(columns=column_name)
    out[column_name("dim")] = [str(d) for d in rows.dim]
    out[column_name("precision")] = [cell_label(p, m) for p, m in zip(rows.precision, rows.rescore_multiplier)]
    for column, template in cols:
        out[column_name(column)] = [format_value(v, template, column) for v in rows[column]]
    return out


def markdown_table(frame: pd.DataFrame, left: int) -> str:
    """A markdown table of display text; the first ``left`` columns left-aligned, the rest right."""
    if frame.empty:
        return ""
    align = ["---" if i < left else "---:" for i in range(len(frame.columns))]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def cost_table(rows: pd.DataFrame) -> str:
    """Markdown: what encoding costs per (model, task, backend) (lexical baselines encode nothing:
    their index and search costs are in the search table)."""
    return markdown_table(cost_frame(rows), len(shown_group(rows)))


def search_table(rows: pd.DataFrame) -> str:
    """Markdown: index size and exact-search speed per cell."""
    if "search_queries_per_second" not in rows.columns:
        return ""
    return markdown_table(cell_frame(rows, [(c, t) for c, t in SEARCH_COLUMNS]), len(shown_group(rows)) + 2)


def full_table(rows: pd.DataFrame) -> str:
    """Markdown: every cell with its main score, a few common metrics and retention."""
    return markdown_table(cell_frame(rows, FULL_COLUMNS), len(shown_group(rows)) + 2)


def comparison_settings(run_dir: Path, manifest: dict) -> Comparison:
    """What rendering needs to compare each table's cells with its reference: the run's per-query
    scores and its bootstrap settings (so a re-render gives the same marks)."""
    per_query = results.read_per_query(run_dir) if (Path(run_dir) / results.PER_QUERY).is_file() else None
    config = manifest.get("config", {})
    return Comparison(per_query, int(config.get("bootstrap_resamples", 1000)), int(config.get("seed", 0)))


def overview_sections(rows: pd.DataFrame, summary: str) -> list[str]:
    """The sections ``bench run`` prints and ``table.md`` starts with: quality (``summary``), MTEB
    aggregates (tasks with several splits or subsets) and encoding cost, each under an h2."""
    parts = [f"## Quality\n\n{summary}"]
    aggregates = aggregate_table(rows)
    if aggregates:
        parts.append(f"## MTEB aggregates\n\nUnweighted mean of the main score over splits and subsets.\n\n{aggregates}\n")
    contexts = context_markdown(rows)
    if contexts:
        parts.append(f"## Contexts\n\n{contexts}\n")
    costs = cost_table(rows)
    if costs:
        parts.append(f"## Encoding cost\n\n{costs}\n")
    return parts


def table_markdown(manifest: dict, rows: pd.DataFrame, summary: str) -> str:
    """``table.md``: the run's title (h1), then its sections in order, each an h2 (quality with an
    h3 per group, MTEB aggregates, encoding cost, exact search, all cells)."""
    parts = [f"# Run {manifest['run_id']}\n", *overview_sections(rows, summary)]
    search = search_table(rows)
    if search:
        parts.append(f"## Exact search\n\n{search}\n")
    parts.append(f"## All cells\n\n{full_table(rows)}\n")
    return "\n".join(parts)


# The source files of everything that draws a plot: a change to any of them draws the plots anew
# instead of copying them from the plot cache (``bench.plots``).
DRAWING_CODE = tuple(Path(m.__file__) for m in (figures, layout, precisions, cells, names))


def render(run_dir: Path) -> str:
    """Write ``table.md`` and ``plots/`` for a finished run (plots copied from the cache when the
    same rows were drawn by the same code before); return its overview (quality tables, MTEB
    aggregates, encoding cost) as markdown."""
    manifest, rows = results.read_run(run_dir)
    rows = with_parameters(rows, manifest)
    summary = summary_markdown(rows, comparison_settings(run_dir, manifest))
    atomic_write_bytes(Path(run_dir) / "table.md", table_markdown(manifest, rows, summary).encode("utf-8"))
    plot_cache = manifest.get("config", {}).get("cache_dir")
    plots.cached(rows, Path(run_dir) / "plots", Path(plot_cache) / "plots" if plot_cache else None,
                 figures.render_plots, DRAWING_CODE)  # fmt: skip
    return "\n".join(overview_sections(rows, summary))


# --------------------------------------------------------------------------- contexts


def context_table(cells: pd.DataFrame, alone: pd.DataFrame) -> str:
    """Markdown: precisions down, dimensions across, ``independent → context (difference)`` and a
    mark where the paired permutation test over queries finds the difference significant after
    Holm's correction over the table (computed here for rows stored before the adjusted column)."""
    if "vs_independent_p_holm" not in cells.columns and "vs_independent_p_value" in cells.columns:
        cells = cells.assign(vs_independent_p_holm=stats.holm(list(cells.vs_independent_p_value.fillna(1.0))))
    dims = sorted(cells.dim.unique(), reverse=True)
    out = ["| precision | " + " | ".join(str(d) for d in dims) + " |", "|---|" + "---:|" * len(dims)]
    base = {(r.precision, int(r.rescore_multiplier), int(r.dim)): r.main_score for _, r in alone.iterrows()}
    for label, variant in variants(cells):
        by_dim = {int(r.dim): r for _, r in variant.iterrows()}
        shown = []
        for d in dims:
            r = by_dim.get(int(d))
            ref = base.get((r.precision, int(r.rescore_multiplier), int(d))) if r is not None else None
            if r is None or ref is None or pd.isna(r.get("vs_independent_difference")):
                shown.append("")
                continue
            shown_mark = mark(r.vs_independent_difference, r.get("vs_independent_p_holm"))
            shown.append(f"{ref:.4f} → {r.main_score:.4f} ({r.vs_independent_difference:+.4f}){shown_mark}")
        out.append(f"| {label} | " + " | ".join(shown) + " |")
    return "\n".join(out)


def context_markdown(rows: pd.DataFrame) -> str:
    """Every context against independent, per (model, task, backend), with the encode cost of each."""
    parts = []
    for key, in_context, alone in context_pairs(rows):
        costs = [f"{c}: corpus encoded in {format_value(f.encode_seconds_documents.iloc[0], '{:.1f}', '')} s"
                 for c, f in ((DEFAULT_CONTEXT, alone), (key["context"], in_context)) if "encode_seconds_documents" in f]
        parts.append(
            f"### {key['model']} · {key['task']} · {key['backend']}: {key['context']} against independent\n\n"
            f"{score_label(in_context)}, independent → {key['context']} (paired difference per query; ▲/▼ {key['context']} "
            f"significantly better/worse: paired sign-flip permutation test over the queries, "
            f"p < {ALPHA} after Holm's correction across the cells of this table). Encode cost: {'; '.join(costs)}.\n\n"
            f"{context_table(in_context, alone)}\n"
        )
    return "\n".join(parts)
