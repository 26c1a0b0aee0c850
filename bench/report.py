"""Tables and plots, made from saved result files only (never written back into them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import results
from bench.aggregate import task_aggregates
from bench.cache import atomic_write_bytes
from bench.cells import GROUP_KEYS
from bench.names import file_stem
from bench.types import Precision

GROUP = list(GROUP_KEYS)
PRECISION_ORDER = [p.value for p in Precision]


def group_stem(key: dict) -> str:
    """The file-name stem of a group's plots: names joined as they are when plain, otherwise made
    safe with a digest (``bench.names.file_stem``), so no name can place a plot outside ``plots/``."""
    return file_stem(*(key[k] for k in GROUP))


def groups(rows: pd.DataFrame):
    for key, frame in rows.groupby(GROUP, sort=True):
        yield dict(zip(GROUP, key)), frame


def pivot_table(frame: pd.DataFrame, metric: str = "main_score") -> str:
    """Markdown: dimensions down, precisions across, ``score (retention %)`` in each cell."""
    cols = [p for p in PRECISION_ORDER if p in set(frame.precision)]
    header = "| dim | " + " | ".join(cols) + " |"
    lines = [header, "|" + "---:|" * (len(cols) + 1)]
    for dim in sorted(frame.dim.unique(), reverse=True):
        cells = []
        for p in cols:
            hit = frame[(frame.dim == dim) & (frame.precision == p)]
            if hit.empty:
                cells.append("")
            else:
                r = hit.iloc[0]
                mark = " ▼" if bool(r.get("significantly_worse", False)) else ""
                cells.append(f"{r[metric]:.4f} ({100 * r.retention:.1f}%){mark}")
        lines.append(f"| {dim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(rows: pd.DataFrame) -> str:
    """One pivot per (model, task, backend), headed by what the score is."""
    parts = []
    for key, frame in groups(rows):
        metric = frame.main_score_name.iloc[0]
        parts.append(
            f"### {key['model']} · {key['task']} · {key['backend']}\n\n"
            f"{metric} (retention vs float32 at full dimension; ▼ significantly worse than it, "
            f"paired permutation test p < 0.05)\n\n{pivot_table(frame)}\n"
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
    cols = [*GROUP, "dim", "precision", "bytes_per_vector", "main_score_name", "main_score", "ndcg_at_10",
            "recall_at_100", "mrr_at_10", "retention"]  # fmt: skip
    frame = rows[cols].copy()
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
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


def plot_group(frame: pd.DataFrame, key: dict, out_dir: Path) -> list[Path]:
    """The main score against dimension (a line per precision) and against bytes per vector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem, metric = group_stem(key), frame.main_score_name.iloc[0]
    title = f"{key['model']} on {key['task']} ({key['backend']})"
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for p in [p for p in PRECISION_ORDER if p in set(frame.precision)]:
        sub = frame[frame.precision == p].sort_values("dim")
        ax.plot(sub.dim, sub.main_score, marker="o", label=p)
    ax.set(xlabel="dimension", ylabel=metric, title=title)
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(save_figure(fig, out_dir / f"{stem}__score_vs_dim.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for p in [p for p in PRECISION_ORDER if p in set(frame.precision)]:
        sub = frame[frame.precision == p]
        ax.scatter(sub.bytes_per_vector, sub.main_score, label=p, s=28)
    front = pareto_front(frame, "bytes_per_vector", "main_score")
    ax.step(front.bytes_per_vector, front.main_score, where="post", color="black", lw=1,
            label="Pareto frontier")  # fmt: skip
    for _, r in front.iterrows():
        ax.annotate(f"{r.precision}@{r.dim}", (r.bytes_per_vector, r.main_score), fontsize=6,
                    xytext=(3, -8), textcoords="offset points")  # fmt: skip
    ax.set(xlabel="bytes per vector (log scale)", ylabel=metric, title=title)
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(save_figure(fig, out_dir / f"{stem}__score_vs_bytes.png"))
    return paths


COST_COLUMNS = [
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
    """Markdown: one line per (model, task, backend) with what encoding costs."""
    cols = [c for c in COST_COLUMNS if c[0] in rows.columns]
    if not cols:
        return ""
    first = rows.groupby(GROUP, sort=True).first().reset_index()
    lines = ["| model | task | backend | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---|---|" + "---:|" * len(cols)]  # fmt: skip
    for _, r in first.iterrows():
        vals = [format_value(r[c], t, c) for c, _, t in cols]
        lines.append(f"| {r.model} | {r.task} | {r.backend} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def search_table(rows: pd.DataFrame) -> str:
    """Markdown: index size and exact-search speed per cell."""
    if "search_queries_per_second" not in rows.columns:
        return ""
    cols = [*GROUP, "dim", "precision", "index_bytes", "search_queries_per_second",
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
    first = rows.groupby(["model", "backend"], sort=True).first().reset_index()
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
    """The main score against exact-search throughput per cell, Pareto frontier marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "search_queries_per_second" not in rows.columns:
        return []
    paths = []
    for key, frame in groups(rows):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for p in [p for p in PRECISION_ORDER if p in set(frame.precision)]:
            sub = frame[frame.precision == p]
            ax.scatter(sub.search_queries_per_second, sub.main_score, label=p, s=28)
        front = pareto_front(frame.assign(cost=-frame.search_queries_per_second), "cost", "main_score")
        ax.step(front.search_queries_per_second, front.main_score, where="pre", color="black", lw=1,
                label="Pareto frontier")  # fmt: skip
        ax.set(xlabel="exact search throughput (queries/s, log scale)", ylabel=frame.main_score_name.iloc[0],
               title=f"{key['model']} on {key['task']} ({key['backend']})")  # fmt: skip
        ax.set_xscale("log")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        paths.append(save_figure(fig, out_dir / f"{group_stem(key)}__score_vs_search_qps.png"))
    return paths


def plot_intervals(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Main score with its bootstrap 95% interval, per cell (one figure per group)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "main_score_ci_low" not in rows.columns:
        return []
    paths = []
    for key, frame in groups(rows):
        precisions = [p for p in PRECISION_ORDER if p in set(frame.precision)]
        dims = sorted(frame.dim.unique(), reverse=True)
        fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * len(dims) * len(precisions)), 4.2))
        width = 0.8 / len(precisions)
        for i, p in enumerate(precisions):
            sub = frame[frame.precision == p].set_index("dim").reindex(dims)
            x = [j + i * width for j in range(len(dims))]
            err = [sub.main_score - sub.main_score_ci_low, sub.main_score_ci_high - sub.main_score]
            ax.errorbar(x, sub.main_score, yerr=err, fmt="o", capsize=3, label=p, ms=4)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(dims))], [str(d) for d in dims])
        ax.set(xlabel="dimension", ylabel=f"{frame.main_score_name.iloc[0]} (95% CI)",
               title=f"{key['model']} on {key['task']} ({key['backend']})")  # fmt: skip
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


def render(run_dir: Path) -> str:
    """Write ``table.md`` and ``plots/`` for a finished run; return the summary markdown."""
    manifest, rows = results.read_run(run_dir)
    summary = summary_markdown(rows)
    aggregates = aggregate_table(rows)
    if aggregates:
        heading = "MTEB aggregates (unweighted mean of the main score over splits and subsets)"
        summary += f"\n### {heading}\n\n{aggregates}\n"
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
    plot_intervals(rows, Path(run_dir) / "plots")
    return summary
