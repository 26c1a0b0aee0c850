"""Plots of result rows (PNG, matplotlib's Agg backend), made from saved result files only.

Per (model, task, backend) group: the main score against dimension, against bytes per vector,
against exact-search throughput, and with its 95% intervals; per task: every cell's Pareto plot
and, when several models are in the rows, quality against model size, encode speed and bytes per
vector; for the run: encode throughput and peak memory by backend; per context other than
independent: its scores and paired differences against independent.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from bench.cache import atomic_write_bytes
from bench.cells import DEFAULT_CONTEXT, is_lexical, reference_rows
from bench.layout import context_pairs, group_stem, group_title, groups, metric_label, point_label, score_label, variants
from bench.names import file_stem
from bench.stats import ALPHA, holm

# Line styles and markers cycle independently of colours, so lines that coincide (float16 on
# float32) stay visible: each later variant is drawn dashed or dotted with a smaller marker.
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """A figure as PNG bytes (the figure is closed)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    pyplot().close(fig)
    return buffer.getvalue()


def save_figure(fig, path: Path) -> Path:
    """Write a figure as PNG, atomically."""
    atomic_write_bytes(path, figure_png(fig))
    return path


def pareto_front(points: pd.DataFrame, cost: str, score: str) -> pd.DataFrame:
    """Points no other point beats on both axes (lower cost and higher score)."""
    ordered = points.sort_values([cost, score], ascending=[True, False], kind="stable")
    best, keep = float("-inf"), []
    for position, value in enumerate(ordered[score].to_numpy(dtype=float)):
        if value > best:  # by position: a frame concatenated from several runs may repeat index labels
            keep.append(position)
            best = value
    return ordered.iloc[keep]


# cost column -> (axis label, higher is better, log base)
PARETO_AXES = {
    "bytes_per_vector": ("bytes per vector (log scale)", False, 2),
    "search_queries_per_second": ("exact search throughput (queries/s, log scale)", True, 10),
    "parameters": ("parameters (log scale)", False, 10),
    "documents_per_second": ("encode throughput (documents/s, log scale)", True, 10),
}


def draw_front(ax, frame: pd.DataFrame, cost: str, metric: str, label=point_label) -> pd.DataFrame:
    """The Pareto frontier of ``frame`` on (cost, metric) as a black step line, its points labelled."""
    higher_better = PARETO_AXES[cost][1]
    keyed = frame.assign(_cost=-frame[cost] if higher_better else frame[cost])
    front = pareto_front(keyed, "_cost", metric)
    ax.step(front[cost], front[metric], where="pre" if higher_better else "post", color="black", lw=1,
            label="Pareto frontier")  # fmt: skip
    for _, r in front.iterrows():
        ax.annotate(label(r), (r[cost], r[metric]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    return front


def pareto_panel(ax, frame: pd.DataFrame, cost: str, metric: str = "main_score", with_model: bool = False,
                 label_dims: bool = False) -> None:  # fmt: skip
    """``metric`` against a cost column, one colour per precision variant (lexical baselines as black
    stars), the Pareto frontier drawn and its points labelled; with ``label_dims`` every other
    point is labelled with its dimension."""
    frame = frame[frame[cost].notna()].reset_index(drop=True)
    label, _, base = PARETO_AXES[cost]
    dense = frame[frame.dim > 0]
    palette = pyplot().get_cmap("tab20").colors  # enough distinct colours for every precision variant
    for i, (name, cells) in enumerate(variants(dense)):
        ax.scatter(cells[cost], cells[metric], label=name, s=22, color=palette[i % len(palette)])
    for _, lex in frame[frame.dim == 0].iterrows():
        ax.scatter([lex[cost]], [lex[metric]], marker="*", s=140, color="black", label=f"{lex.model} (lexical)")
    front = draw_front(ax, frame, cost, metric, lambda r: point_label(r, with_model))
    if label_dims:
        for idx, r in dense.drop(index=front.index, errors="ignore").iterrows():
            ax.annotate(str(r.dim), (r[cost], r[metric]), fontsize=5, color="0.35", xytext=(2, 2),
                        textcoords="offset points")  # fmt: skip
    ax.set(xlabel=label, ylabel=score_label(frame) if metric == "main_score" else metric_label(metric))
    log_axis(ax, base)
    ax.grid(alpha=0.3)


def log_axis(ax, base: int) -> None:
    """A logarithmic x axis labelled at its major ticks only (minor labels overlap on short ranges)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log", base=base)
    ax.xaxis.set_minor_formatter(NullFormatter())


def dimension_axis(ax, dims) -> None:
    """A log2 dimension axis with a tick at every swept dimension (and only there)."""
    dims = sorted({int(d) for d in dims})
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.minorticks_off()
    ax.set_xlim(dims[0] / 1.15, dims[-1] * 1.15)


def plot_score_vs_dim(frame: pd.DataFrame, key: dict, out_dir: Path) -> Path:
    """``score_vs_dim_figure`` of a group, saved."""
    return save_figure(score_vs_dim_figure(frame, key), out_dir / f"{group_stem(key)}__score_vs_dim.png")


def score_vs_dim_figure(frame: pd.DataFrame, key: dict):
    """The main score against dimension, a line per precision variant; lines that coincide stay
    visible (cycled line styles and markers, later ones smaller)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    palette = plt.get_cmap("tab20").colors
    for i, (name, cells) in enumerate(variants(frame)):
        sub = cells.sort_values("dim")
        ax.plot(sub.dim, sub.main_score, label=name, color=palette[i % len(palette)],
                linestyle=LINE_STYLES[i % len(LINE_STYLES)], marker=MARKERS[i % len(MARKERS)],
                markersize=max(3.0, 7.0 - 0.4 * i), markerfacecolor="none" if i % 2 else None, lw=1.4)  # fmt: skip
    dimension_axis(ax, frame.dim)
    ax.set(xlabel="dimension", ylabel=score_label(frame), title=group_title(key))
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def plot_score_vs_bytes(frame: pd.DataFrame, key: dict, out_dir: Path) -> Path:
    """The main score against bytes per vector, Pareto frontier marked."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4.2))
    pareto_panel(ax, frame, "bytes_per_vector", label_dims=True)
    ax.set_title(group_title(key))
    ax.legend(fontsize=6, ncol=2)
    return save_figure(fig, out_dir / f"{group_stem(key)}__score_vs_bytes.png")


def plot_costs(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Encode throughput and peak memory by backend and model."""
    if "documents_per_second" not in rows.columns:
        return []
    plt = pyplot()
    first = rows[~is_lexical(rows)].groupby(["model", "backend", "context"], sort=True).first().reset_index()
    labels = [f"{m}\n{b}" + (f"\n{c}" if c != DEFAULT_CONTEXT else "") for m, b, c in zip(first.model, first.backend, first.context)]
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
    """The main score against exact-search throughput per cell of each group, Pareto frontier
    marked, every point labelled with its dimension."""
    if "search_queries_per_second" not in rows.columns:
        return []
    plt, paths = pyplot(), []
    for key, frame in groups(rows):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        pareto_panel(ax, frame, "search_queries_per_second", label_dims=True)
        ax.set_title(group_title(key))
        ax.legend(fontsize=6, ncol=2)
        paths.append(save_figure(fig, out_dir / f"{group_stem(key)}__score_vs_search_qps.png"))
    return paths


def pareto_figure(frame: pd.DataFrame, task: str):
    """Every cell of a task (all models, backends, lexical baselines): the main score against bytes
    per vector and against exact-search throughput, each with its Pareto frontier."""
    costs = [c for c in ("bytes_per_vector", "search_queries_per_second") if c in frame.columns and frame[c].notna().any()]
    fig, axes = pyplot().subplots(1, len(costs), figsize=(6.4 * len(costs), 5.0), squeeze=False)
    several = frame[frame.dim > 0].groupby(["model", "backend", "context"]).ngroups > 1
    for ax, cost in zip(axes[0], costs):
        pareto_panel(ax, frame, cost, with_model=several)
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{task}: every cell ({score_label(frame)}), Pareto frontier")
    return fig


def plot_pareto(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``pareto_figure`` of every task."""
    return [save_figure(pareto_figure(frame, task), out_dir / f"{file_stem(task)}__pareto.png")
            for task, frame in rows.groupby("task", sort=True)]  # fmt: skip


def model_points(frame: pd.DataFrame) -> pd.DataFrame:
    """One point per dense (model, backend) of a task: its float32 full-dimension cell, with the
    model's parameter count and encode throughput."""
    refs = reference_rows(frame[~is_lexical(frame)], ("model", "backend", "context")).reset_index()
    return refs.assign(name=[side_name(r) for _, r in refs.iterrows()])


def side_name(row) -> str:
    """``model (backend)``, with the context where it is not the default."""
    context = f", {row.context}" if row.get("context", DEFAULT_CONTEXT) != DEFAULT_CONTEXT else ""
    return f"{row.model} ({row.backend}{context})"


def models_figure(frame: pd.DataFrame, task: str):
    """Quality against model size, encode speed and bytes per vector for every model of a task,
    each panel with its Pareto frontier; None when the task has fewer than two models."""
    frame = frame.reset_index(drop=True)
    points = model_points(frame)
    if len(points) < 2:
        return None
    panels = [c for c in ("parameters", "documents_per_second") if c in points.columns and points[c].notna().any()]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(5.2 * (len(panels) + 1), 4.6), squeeze=False)
    colours = {name: plt.get_cmap("tab10").colors[i % 10] for i, name in enumerate(points.name)}
    for ax, cost in zip(axes[0], panels):
        known = points[points[cost].notna()].astype({cost: float})
        for _, p in known.iterrows():
            ax.scatter([p[cost]], [p.main_score], s=60, color=colours[p["name"]], label=p["name"])
        draw_front(ax, known, cost, "main_score", lambda r: r["name"])
        ax.set(xlabel=PARETO_AXES[cost][0], ylabel=f"{score_label(frame)} (float32, full dimension)")
        log_axis(ax, PARETO_AXES[cost][2])
        ax.grid(alpha=0.3)
    _cells_by_model(axes[0][-1], frame, colours)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{task}: quality against model size, encode speed and bytes per vector, Pareto frontiers")
    return fig


def _cells_by_model(ax, frame: pd.DataFrame, colours: dict) -> None:
    """Every dense cell of every model against bytes per vector, coloured by model, frontier marked."""
    dense = frame[~is_lexical(frame)].assign(name=lambda f: [side_name(r) for _, r in f.iterrows()])
    for name, cells in dense.groupby("name", sort=True):
        ax.scatter(cells.bytes_per_vector, cells.main_score, s=16, color=colours.get(name, "grey"), label=name)
    draw_front(ax, dense, "bytes_per_vector", "main_score", lambda r: f"{r.model}: {point_label(r)}")
    ax.set(xlabel=PARETO_AXES["bytes_per_vector"][0], ylabel=f"{score_label(frame)} (every cell)")
    log_axis(ax, 2)
    ax.grid(alpha=0.3)


def plot_models(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``models_figure`` of every task with at least two models."""
    paths = []
    for task, frame in rows.groupby("task", sort=True):
        fig = models_figure(frame, task)
        if fig is not None:
            paths.append(save_figure(fig, out_dir / f"{file_stem(task)}__models.png"))
    return paths


def plot_intervals(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Main score with its bootstrap 95% interval, per cell (one figure per group)."""
    if "main_score_ci_low" not in rows.columns:
        return []
    plt, paths = pyplot(), []
    for key, frame in groups(rows):
        kinds = variants(frame)
        dims = sorted(frame.dim.unique(), reverse=True)
        fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * len(dims) * len(kinds)), 4.2))
        width = 0.8 / len(kinds)
        for i, (name, cells) in enumerate(kinds):
            sub = cells.set_index("dim").reindex(dims)
            x = [j + i * width for j in range(len(dims))]
            err = [sub.main_score - sub.main_score_ci_low, sub.main_score_ci_high - sub.main_score]
            ax.errorbar(x, sub.main_score, yerr=err, fmt=MARKERS[i % len(MARKERS)], capsize=3, label=name, ms=4)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(dims))], [str(d) for d in dims])
        ax.set(xlabel="dimension", ylabel=score_label(frame),
               title=f"{group_title(key)}: 95% bootstrap intervals")  # fmt: skip
        ax.legend(fontsize=7, ncol=3)
        ax.grid(axis="y", alpha=0.3)
        paths.append(save_figure(fig, out_dir / f"{group_stem(key)}__ci.png"))
    return paths


def render_plots(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every plot of a run's rows into ``out_dir``."""
    paths = []
    for key, frame in groups(rows):
        paths += [plot_score_vs_dim(frame, key, out_dir), plot_score_vs_bytes(frame, key, out_dir)]
    paths += plot_costs(rows, out_dir) + plot_search_pareto(rows, out_dir) + plot_pareto(rows, out_dir)
    return paths + plot_models(rows, out_dir) + plot_intervals(rows, out_dir) + plot_contexts(rows, out_dir)


def plot_contexts(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per (model, task, backend) and context other than independent: the float32 main score
    against dimension for both contexts (95% intervals), and the paired difference of every
    precision variant (filled markers: significant after Holm's correction over the table)."""
    plt, paths = pyplot(), []
    for key, cells, alone in context_pairs(rows):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.4))
        for i, (name, frame) in enumerate(((DEFAULT_CONTEXT, alone), (key["context"], cells))):
            sub = frame[(frame.precision == "float32") & (frame.rescore_multiplier == 0)].sort_values("dim")
            err = None
            if "main_score_ci_low" in sub.columns:
                err = [sub.main_score - sub.main_score_ci_low, sub.main_score_ci_high - sub.main_score]
            left.errorbar(sub.dim, sub.main_score, yerr=err, marker=MARKERS[i], capsize=3, label=f"{name} (float32)")
        dimension_axis(left, cells.dim)
        left.set(xlabel="dimension", ylabel=f"{score_label(cells)} (95% CI)", title="float32")
        left.legend(fontsize=7)
        left.grid(alpha=0.3)
        palette = plt.get_cmap("tab20").colors
        if "vs_independent_p_holm" not in cells.columns:  # rows stored before the adjusted column
            cells = cells.assign(vs_independent_p_holm=holm(list(cells.vs_independent_p_value.fillna(1.0))))
        for i, (label, variant) in enumerate(variants(cells)):
            sub = variant.sort_values("dim")
            colour = palette[i % len(palette)]
            significant = sub.vs_independent_p_holm < ALPHA
            right.plot(sub.dim, sub.vs_independent_difference, color=colour, lw=1, label=label,
                       linestyle=LINE_STYLES[i % len(LINE_STYLES)])  # fmt: skip
            right.scatter(sub.dim[significant], sub.vs_independent_difference[significant], color=colour, s=22)
            right.scatter(sub.dim[~significant], sub.vs_independent_difference[~significant], facecolors="none",
                          edgecolors=colour, s=22)  # fmt: skip
        right.axhline(0, color="black", lw=0.8)
        dimension_axis(right, cells.dim)
        right.set(xlabel="dimension", ylabel=f"{key['context']} − independent (paired mean)",
                  title=f"every precision (filled: p < {ALPHA} after Holm)")  # fmt: skip
        right.legend(fontsize=6, ncol=2)
        right.grid(alpha=0.3)
        fig.suptitle(f"{key['model']} on {key['task']} ({key['backend']}): {key['context']} against independent")
        stem = file_stem(key["model"], key["task"], key["backend"], f"ctx-{key['context']}")
        paths.append(save_figure(fig, out_dir / f"{stem}__vs_independent.png"))
    return paths

