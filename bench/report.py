"""Tables and plots, made from saved result files only (never written back into them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench import precisions, results, stats
from bench.aggregate import task_aggregates
from bench.cache import atomic_write_bytes
from bench.cells import DEFAULT_CONTEXT, GROUP_KEYS, cell_label, is_lexical
from bench.names import file_stem

GROUP = list(GROUP_KEYS)
PRECISION_ORDER = precisions.names()
ALPHA = 0.05  # significance level of the ▼/▲ marks


def group_stem(key: dict) -> str:
    """The file-name stem of a group's plots: names joined as they are when plain, otherwise made
    safe with a digest (``bench.names.file_stem``), so no name can place a plot outside ``plots/``.
    Groups of the default context keep the names they had before contexts existed."""
    return file_stem(*(key[k] for k in GROUP if k != "context" or key[k] != DEFAULT_CONTEXT))


def group_title(key: dict) -> str:
    """``model on task (backend[, context])`` for plot titles."""
    context = f", context {key['context']}" if key.get("context", DEFAULT_CONTEXT) != DEFAULT_CONTEXT else ""
    return f"{key['model']} on {key['task']} ({key['backend']}{context})"


def groups(rows: pd.DataFrame):
    """Dense (model, task, backend) groups; lexical baselines are shown inside their task's groups."""
    for key, frame in rows[~is_lexical(rows)].groupby(GROUP, sort=True):
        yield dict(zip(GROUP, key)), frame


def variants(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, cells) per precision variant, in registry order, then by rescore multiplier."""
    order = {name: i for i, name in enumerate(PRECISION_ORDER)}
    keys = sorted({(p, int(m)) for p, m in zip(frame.precision, frame.rescore_multiplier)},
                  key=lambda pm: (order.get(pm[0], len(order)), pm[0], pm[1]))  # fmt: skip
    return [(cell_label(p, m), frame[(frame.precision == p) & (frame.rescore_multiplier == m)]) for p, m in keys]


@dataclass(frozen=True)
class Shown:
    """One table entry: a cell's main score against its group's float32 full-width reference."""

    score: float
    retention: float
    mark: str  # " ▼" significantly worse, " ▲" significantly better, "" neither
    ci_low: float | None = None
    ci_high: float | None = None


def _mark(difference, p_value) -> str:
    if p_value is None or pd.isna(p_value) or p_value >= ALPHA:
        return ""
    return " ▼" if difference < 0 else " ▲"


def _shown(row: pd.Series) -> Shown:
    return Shown(float(row.main_score), float(row.retention), _mark(row.get("vs_reference_difference"),
                 row.get("vs_reference_p_value")), row.get("main_score_ci_low"), row.get("main_score_ci_high"))  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """Settings of the paired comparisons made when rendering (a lexical row against a group)."""

    per_query: pd.DataFrame | None
    resamples: int = 1000
    seed: int = 0


def _lexical_shown(lex: pd.Series, frame: pd.DataFrame, cmp: Comparison) -> Shown:
    """A lexical baseline against this group's reference, paired by query like every cell."""
    ref = frame[(frame.precision == "float32") & (frame.rescore_multiplier == 0)].sort_values("dim").iloc[-1]
    ci = (lex.get("main_score_ci_low"), lex.get("main_score_ci_high"))
    if cmp.per_query is None:
        return Shown(float(lex.main_score), float(lex.main_score / ref.main_score), "", *ci)
    c = stats.compare_cells(cmp.per_query, lex, ref, ref.main_score_name, cmp.resamples, cmp.seed)
    return Shown(float(lex.main_score), float(lex.main_score / ref.main_score), _mark(c.mean_difference, c.p_value), *ci)


def quality_grid(frame: pd.DataFrame, lexical: pd.DataFrame, cmp: Comparison) -> tuple[list[int], list[tuple[str, list]]]:
    """Dimensions (widest first) and, per precision variant then per lexical baseline, a label and
    one ``Shown`` (or None) per dimension; a lexical baseline fills only the widest column."""
    dims = sorted(frame.dim.unique(), reverse=True)
    lines = []
    for label, cells in variants(frame):
        by_dim = {int(r.dim): _shown(r) for _, r in cells.iterrows()}
        lines.append((label, [by_dim.get(int(d)) for d in dims]))
    for _, lex in lexical.iterrows():
        lines.append((f"{lex.model} (lexical, no dimensions)", [_lexical_shown(lex, frame, cmp)] + [None] * (len(dims) - 1)))
    return dims, lines


def pivot_table(frame: pd.DataFrame, lexical: pd.DataFrame | None = None, cmp: Comparison = Comparison(None)) -> str:
    """Markdown: precisions down, dimensions across, ``score (retention %)`` and a mark per cell."""
    lexical = frame.iloc[:0] if lexical is None else lexical
    dims, lines = quality_grid(frame, lexical, cmp)
    out = ["| precision | " + " | ".join(str(d) for d in dims) + " |", "|---|" + "---:|" * len(dims)]
    for label, shown in lines:
        cells = [f"{s.score:.4f} ({100 * s.retention:.1f}%){s.mark}" if s else "" for s in shown]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def summary_markdown(rows: pd.DataFrame, cmp: Comparison = Comparison(None)) -> str:
    """One pivot per (model, task, backend), headed by what the score is, with the task's
    lexical baselines as extra lines."""
    parts, lexical = [], rows[is_lexical(rows)]
    for key, frame in groups(rows):
        metric = frame.main_score_name.iloc[0]
        context = f" · context {key['context']}" if key["context"] != DEFAULT_CONTEXT else ""
        parts.append(
            f"### {key['model']} · {key['task']} · {key['backend']}{context}\n\n"
            f"{metric} (retention vs float32 at full dimension; ▼/▲ significantly worse/better than it, "
            f"paired permutation test p < {ALPHA}; ×m: rescoring candidates = top_k × m)\n\n"
            f"{pivot_table(frame, lexical[lexical.task == key['task']], cmp)}\n"
        )
    return "\n".join(parts)


def aggregate_table(rows: pd.DataFrame) -> str:
    """Markdown: MTEB's aggregate (mean main score over splits and subsets) of every task that
    has more than one (split, subset) row; empty when there is none."""
    agg = task_aggregates(rows)
    agg = agg[agg.entries > 1]
    if agg.empty:
        return ""
    lines = ["| model | task | backend | dim | precision | main score | aggregate | entries | splits | subsets |",
             "|---|---|---|---:|---|---|---:|---:|---|---|"]  # fmt: skip
    for _, r in agg.iterrows():
        lines.append(f"| {r.model} | {r.task_name} | {r.backend} | {r.dim} | {r.precision} | {r.main_score_name} | "
                     f"{r.main_score:.4f} | {r.entries} | {r.splits} | {r.subsets} |")  # fmt: skip
    return "\n".join(lines)


def full_table(rows: pd.DataFrame) -> str:
    cols = [*GROUP, "dim", "precision", "rescore_multiplier", "bytes_per_vector", "main_score_name", "main_score",
            "ndcg_at_10", "recall_at_100", "mrr_at_10", "retention"]  # fmt: skip
    frame = rows[[c for c in cols if c in rows.columns]].copy()
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for _, r in frame.iterrows():
        vals = [f"{v:.4f}" if isinstance(v, float) and c != "bytes_per_vector" else f"{v:g}"
                if isinstance(v, float) else str(v) for c, v in r.items()]  # fmt: skip
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def pareto_front(points: pd.DataFrame, cost: str, score: str) -> pd.DataFrame:
    """Points no other point beats on both axes (lower cost and higher score)."""
    ordered = points.sort_values([cost, score], ascending=[True, False])
    best, keep = float("-inf"), []
    for idx, row in ordered.iterrows():
        if row[score] > best:
            keep.append(idx)
            best = row[score]
    return ordered.loc[keep]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def point_label(row: pd.Series, with_model: bool = False) -> str:
    """``precision ×m@dim`` for a cell; the model name for a lexical baseline."""
    if row.dim == 0:
        return str(row.model)
    text = f"{cell_label(row.precision, row.rescore_multiplier)}@{row.dim}"
    context = f" ({row.context})" if row.get("context", DEFAULT_CONTEXT) != DEFAULT_CONTEXT else ""
    return f"{row.model}{context}: {text}" if with_model else text


# cost column -> (axis label, higher is better, log base)
PARETO_AXES = {
    "bytes_per_vector": ("bytes per vector (log scale)", False, 2),
    "search_queries_per_second": ("exact search throughput (queries/s, log scale)", True, 10),
}


def pareto_panel(ax, frame: pd.DataFrame, cost: str, metric: str = "main_score", with_model: bool = False) -> None:
    """``metric`` against a cost column, one colour per precision variant (lexical baselines as black
    stars), the Pareto frontier drawn and its points labelled."""
    frame = frame[frame[cost].notna()]
    label, higher_better, base = PARETO_AXES[cost]
    dense = frame[frame.dim > 0]
    palette = _pyplot().get_cmap("tab20").colors  # enough distinct colours for every precision variant
    for i, (name, cells) in enumerate(variants(dense)):
        ax.scatter(cells[cost], cells[metric], label=name, s=22, color=palette[i % len(palette)])
    for _, lex in frame[frame.dim == 0].iterrows():
        ax.scatter([lex[cost]], [lex[metric]], marker="*", s=140, color="black", label=f"{lex.model} (lexical)")
    keyed = frame.assign(_cost=-frame[cost] if higher_better else frame[cost])
    front = pareto_front(keyed, "_cost", metric)
    ax.step(front[cost], front[metric], where="pre" if higher_better else "post", color="black", lw=1,
            label="Pareto frontier")  # fmt: skip
    for _, r in front.iterrows():
        ax.annotate(point_label(r, with_model), (r[cost], r[metric]), fontsize=6, xytext=(3, -8),
                    textcoords="offset points")  # fmt: skip
    ax.set(xlabel=label, ylabel=score_label(frame) if metric == "main_score" else metric)
    ax.set_xscale("log", base=base)
    ax.grid(alpha=0.3)


def score_label(frame: pd.DataFrame) -> str:
    """The main score's name(s) in a frame, for axis labels."""
    names = sorted(set(frame.main_score_name.dropna()))
    return " / ".join(names) if names else "main score"


def plot_group(frame: pd.DataFrame, key: dict, out_dir: Path) -> list[Path]:
    """The main score against dimension (a line per precision variant) and against bytes per vector."""
    plt = _pyplot()
    stem = group_stem(key)
    title = group_title(key)
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    palette = plt.get_cmap("tab20").colors
    for i, (name, cells) in enumerate(variants(frame)):
        sub = cells.sort_values("dim")
        ax.plot(sub.dim, sub.main_score, marker="o", label=name, color=palette[i % len(palette)])
    ax.set(xlabel="dimension", ylabel=score_label(frame), title=title)
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    paths.append(save_figure(fig, out_dir / f"{stem}__score_vs_dim.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    pareto_panel(ax, frame, "bytes_per_vector")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    paths.append(save_figure(fig, out_dir / f"{stem}__score_vs_bytes.png"))
    return paths


COST_COLUMNS = [
    ("encode_seconds_documents", "corpus encode s", "{:.1f}"),
    ("documents_per_second", "docs/s", "{:.1f}"), ("tokens_per_second", "tokens/s", "{:.0f}"),
    ("query_latency_p50_ms", "query p50 ms", "{:.1f}"), ("query_latency_p95_ms", "query p95 ms", "{:.1f}"),
    ("peak_rss_bytes", "peak RSS MiB", "{:.0f}"), ("peak_cuda_bytes", "peak CUDA MiB", "{:.0f}"),
    ("load_seconds", "load s", "{:.1f}"), ("n_parameters", "parameters", "{:,.0f}"),
]  # fmt: skip


def format_value(value, template: str, column: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return template.format(value / 2**20 if column.endswith("_bytes") else value)


def cost_table(rows: pd.DataFrame) -> str:
    """Markdown: one line per (model, task, backend) with what encoding costs (lexical baselines
    encode nothing: their index and search costs are in the search table)."""
    cols = [c for c in COST_COLUMNS if c[0] in rows.columns]
    if not cols:
        return ""
    first = rows[~is_lexical(rows)].groupby(GROUP, sort=True).first().reset_index()
    lines = ["| model | task | backend | context | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---|---|---|" + "---:|" * len(cols)]  # fmt: skip
    for _, r in first.iterrows():
        vals = [format_value(r[c], t, c) for c, _, t in cols]
        lines.append(f"| {r.model} | {r.task} | {r.backend} | {r.context} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def search_table(rows: pd.DataFrame) -> str:
    """Markdown: index size and exact-search speed per cell."""
    if "search_queries_per_second" not in rows.columns:
        return ""
    cols = [*GROUP, "dim", "precision", "rescore_multiplier", "index_bytes", "search_queries_per_second",
            "search_latency_p50_ms", "search_latency_p95_ms"]  # fmt: skip
    cols = [c for c in cols if c in rows.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in rows[cols].iterrows():
        lines.append("| " + " | ".join(format_value(v, "{:,.1f}" if isinstance(v, float) else "{}", "") for v in r) + " |")
    return "\n".join(lines)


def plot_costs(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Encode throughput and peak memory by backend and model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "documents_per_second" not in rows.columns:
        return []
    first = rows[~is_lexical(rows)].groupby(["model", "backend"], sort=True).first().reset_index()
    labels = [f"{m}\n{b}" for m, b in zip(first.model, first.backend)]
    paths = []
    for column, label, name, scale in [("documents_per_second", "documents / s", "throughput_by_backend", 1),
                                       ("peak_rss_bytes", "peak RSS (MiB)", "peak_memory_by_backend", 2**20)]:
        fig, ax = plt.subplots(figsize=(max(4.8, 1.6 * len(first)), 3.8))
        ax.bar(range(len(first)), first[column].astype(float) / scale, color="tab:blue")
        ax.set_xticks(range(len(first)), labels, fontsize=7)
        ax.set(ylabel=label, title=label.split(" (")[0] + " by backend and model")
        ax.grid(axis="y", alpha=0.3)
        paths.append(save_figure(fig, out_dir / f"{name}.png"))
    return paths


def plot_search_pareto(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The main score against exact-search throughput per cell of each group, Pareto frontier marked."""
    if "search_queries_per_second" not in rows.columns:
        return []
    plt, paths = _pyplot(), []
    for key, frame in groups(rows):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        pareto_panel(ax, frame, "search_queries_per_second")
        ax.set_title(group_title(key))
        ax.legend(fontsize=6, ncol=2)
        paths.append(save_figure(fig, out_dir / f"{group_stem(key)}__score_vs_search_qps.png"))
    return paths


def plot_pareto(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per task, every cell of every model and backend and the lexical baselines: the main score
    against bytes per vector and against exact-search throughput, each with its Pareto frontier."""
    plt, paths = _pyplot(), []
    costs = [c for c in PARETO_AXES if c in rows.columns and rows[c].notna().any()]
    for task, frame in rows.groupby("task", sort=True):
        fig, axes = plt.subplots(1, len(costs), figsize=(6.4 * len(costs), 5.0), squeeze=False)
        several = frame[frame.dim > 0].groupby(["model", "backend", "context"]).ngroups > 1
        for ax, cost in zip(axes[0], costs):
            pareto_panel(ax, frame, cost, with_model=several)
        axes[0][0].legend(fontsize=6, ncol=2)
        fig.suptitle(f"{task}: every cell ({score_label(frame)}), Pareto frontier")
        paths.append(save_figure(fig, out_dir / f"{file_stem(task)}__pareto.png"))
    return paths


def plot_intervals(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Main score with its bootstrap 95% interval, per cell (one figure per group)."""
    if "main_score_ci_low" not in rows.columns:
        return []
    plt, paths = _pyplot(), []
    for key, frame in groups(rows):
        kinds = variants(frame)
        dims = sorted(frame.dim.unique(), reverse=True)
        fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * len(dims) * len(kinds)), 4.2))
        width = 0.8 / len(kinds)
        for i, (name, cells) in enumerate(kinds):
            sub = cells.set_index("dim").reindex(dims)
            x = [j + i * width for j in range(len(dims))]
            err = [sub.main_score - sub.main_score_ci_low, sub.main_score_ci_high - sub.main_score]
            ax.errorbar(x, sub.main_score, yerr=err, fmt="o", capsize=3, label=name, ms=4)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(dims))], [str(d) for d in dims])
        ax.set(xlabel="dimension", ylabel=f"{frame.main_score_name.iloc[0]} (95% CI)",
               title=group_title(key))  # fmt: skip
        ax.legend(fontsize=7, ncol=3)
        ax.grid(axis="y", alpha=0.3)
        paths.append(save_figure(fig, out_dir / f"{group_stem(key)}__ci.png"))
    return paths


def save_figure(fig, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def comparison_settings(run_dir: Path, manifest: dict) -> Comparison:
    """What rendering needs to compare lexical rows with each group: the run's per-query scores and
    its bootstrap settings (so a re-render gives the same marks)."""
    per_query = results.read_per_query(run_dir) if (Path(run_dir) / results.PER_QUERY).is_file() else None
    config = manifest.get("config", {})
    return Comparison(per_query, int(config.get("bootstrap_resamples", 1000)), int(config.get("seed", 0)))


def render(run_dir: Path) -> str:
    """Write ``table.md`` and ``plots/`` for a finished run; return the summary markdown."""
    manifest, rows = results.read_run(run_dir)
    summary = summary_markdown(rows, comparison_settings(run_dir, manifest))
    aggregates = aggregate_table(rows)
    if aggregates:
        heading = "MTEB aggregates (unweighted mean of the main score over splits and subsets)"
        summary += f"\n### {heading}\n\n{aggregates}\n"
    contexts = context_markdown(rows)
    if contexts:
        summary += f"\n{contexts}"
    costs = cost_table(rows)
    if costs:
        summary += f"\n### Encoding cost\n\n{costs}\n"
    text = (f"# Run {manifest['run_id']}\n\n{summary}\n## Exact search\n\n{search_table(rows)}\n"
            f"\n## All cells\n\n{full_table(rows)}\n")  # fmt: skip
    atomic_write_bytes(Path(run_dir) / "table.md", text.encode("utf-8"))
    for key, frame in groups(rows):
        plot_group(frame, key, Path(run_dir) / "plots")
    plot_costs(rows, Path(run_dir) / "plots")
    plot_search_pareto(rows, Path(run_dir) / "plots")
    plot_pareto(rows, Path(run_dir) / "plots")
    plot_intervals(rows, Path(run_dir) / "plots")
    plot_contexts(rows, Path(run_dir) / "plots")
    return summary


# --------------------------------------------------------------------------- contexts


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


def context_table(cells: pd.DataFrame, alone: pd.DataFrame) -> str:
    """Markdown: precisions down, dimensions across, ``independent → context (difference)`` and a
    mark where the paired permutation test over queries finds the difference significant."""
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
            mark = _mark(r.vs_independent_difference, r.vs_independent_p_value)
            shown.append(f"{ref:.4f} → {r.main_score:.4f} ({r.vs_independent_difference:+.4f}){mark}")
        out.append(f"| {label} | " + " | ".join(shown) + " |")
    return "\n".join(out)


def context_markdown(rows: pd.DataFrame) -> str:
    """Every context against independent, per (model, task, backend), with the encode cost of each."""
    parts = []
    for key, cells, alone in context_pairs(rows):
        metric = cells.main_score_name.iloc[0]
        costs = [f"{c}: corpus encoded in {format_value(f.encode_seconds_documents.iloc[0], '{:.1f}', '')} s"
                 for c, f in ((DEFAULT_CONTEXT, alone), (key["context"], cells)) if "encode_seconds_documents" in f]
        parts.append(
            f"### {key['model']} · {key['task']} · {key['backend']}: {key['context']} against independent\n\n"
            f"{metric}, independent → {key['context']} (paired difference per query; ▲/▼ {key['context']} "
            f"significantly better/worse, paired permutation test p < {ALPHA}). Encode cost: {'; '.join(costs)}.\n\n"
            f"{context_table(cells, alone)}\n"
        )
    return "\n".join(parts)


def plot_contexts(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per (model, task, backend) and context: the float32 main score against dimension for both
    contexts (95% intervals), and the paired difference of every precision variant (filled markers:
    significant at p < 0.05)."""
    plt, paths = _pyplot(), []
    for key, cells, alone in context_pairs(rows):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.4))
        for name, frame in ((DEFAULT_CONTEXT, alone), (key["context"], cells)):
            sub = frame[(frame.precision == "float32") & (frame.rescore_multiplier == 0)].sort_values("dim")
            err = None
            if "main_score_ci_low" in sub.columns:
                err = [sub.main_score - sub.main_score_ci_low, sub.main_score_ci_high - sub.main_score]
            left.errorbar(sub.dim, sub.main_score, yerr=err, marker="o", capsize=3, label=f"{name} (float32)")
        left.set(xlabel="dimension", ylabel=f"{cells.main_score_name.iloc[0]} (95% CI)", title="float32")
        left.set_xscale("log", base=2)
        left.legend(fontsize=7)
        left.grid(alpha=0.3)
        palette = plt.get_cmap("tab20").colors
        for i, (label, variant) in enumerate(variants(cells)):
            sub = variant.sort_values("dim")
            significant = sub.vs_independent_p_value < ALPHA
            right.plot(sub.dim, sub.vs_independent_difference, color=palette[i % len(palette)], lw=1, label=label)
            right.scatter(sub.dim[significant], sub.vs_independent_difference[significant], color=palette[i % len(palette)], s=22)
            right.scatter(sub.dim[~significant], sub.vs_independent_difference[~significant], facecolors="none",
                          edgecolors=palette[i % len(palette)], s=22)  # fmt: skip
        right.axhline(0, color="black", lw=0.8)
        right.set(xlabel="dimension", ylabel=f"{key['context']} − independent (paired mean)",
                  title="every precision (filled: p < 0.05)")  # fmt: skip
        right.set_xscale("log", base=2)
        right.legend(fontsize=6, ncol=2)
        right.grid(alpha=0.3)
        fig.suptitle(f"{key['model']} on {key['task']} ({key['backend']}): {key['context']} against independent")
        stem = file_stem(key["model"], key["task"], key["backend"], f"ctx-{key['context']}")
        paths.append(save_figure(fig, out_dir / f"{stem}__vs_independent.png"))
    return paths
