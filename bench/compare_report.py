"""A comparison of runs (``bench.compare``) as markdown for a pull request, JSON for machines and
one self-contained HTML page; made from the runs' files only, written only where asked."""

from __future__ import annotations

import pandas as pd

from bench.compare import Report, TaskTable, key_text, note_text, table_frame, unshared_text
from bench.html import escape, figure_html, manifest_html, page_html, table_html
from bench.layout import blank_repeats, has_contexts, metric_label
from bench.names import file_stem
from bench.figures import figure_png, models_figure, pareto_figure
from bench.report import format_value, markdown_table


def sides_frame(report: Report) -> pd.DataFrame:
    """The sides: label, run, when it started, git commit, cells."""
    return pd.DataFrame([{"side": s.label, "run": s.run_id, "started": str(s.manifest.get("started_at") or "–")[:19],
                          "git": str(s.manifest.get("git_sha") or "–")[:10], "cells": str(len(s.rows))}
                         for s in report.sides])  # fmt: skip


def models_frame(report: Report, task: str) -> pd.DataFrame:
    """Per side on a task: parameters, encode throughput, the float32 full-dimension score and the
    best cell (quality, size and speed side by side)."""
    records = []
    contexts = any(has_contexts(side.rows) for side in report.sides)
    for side in report.sides:
        rows = side.rows[(side.rows.task == task) & (side.rows.dim > 0)]
        for (model, backend, context), group in rows.groupby(["model", "backend", "context"], sort=False):
            ref = group[(group.precision == "float32") & (group.rescore_multiplier == 0)].sort_values("dim")
            best = group.sort_values(["main_score", "bytes_per_vector"], ascending=[False, True]).iloc[0]
            records.append({
                "side": side.label, "model": model, "backend": backend, **({"context": context} if contexts else {}),
                "parameters": format_value(group.parameters.iloc[0] if "parameters" in group else None, "{}", "parameters"),
                "docs/s": format_value(group.get("documents_per_second", pd.Series([None])).iloc[0], "{:.1f}", ""),
                "float32 score": format_value(ref.main_score.iloc[-1] if len(ref) else None, "{:.4f}", ""),
                "at dimension": str(ref.dim.iloc[-1]) if len(ref) else "–",
                "best cell": f"{best.precision}@{best.dim}", "best score": f"{best.main_score:.4f}",
                "best bytes/vector": format_value(best.bytes_per_vector, "{}", "bytes_per_vector"),
            })  # fmt: skip
    return pd.DataFrame(records)


def _lexical_lines(report: Report, task: str) -> list[str]:
    if report.lexical is None or report.lexical.empty:
        return []
    lex = report.lexical[report.lexical.task == task]
    return [f"{r.model} (lexical): {r.main_score:.4f} (run {r.run_id})"
            for _, r in lex.drop_duplicates(["model", "main_score"]).iterrows()]  # fmt: skip


def _display(table: TaskTable, report: Report) -> pd.DataFrame:
    frame = table_frame(table, report.sides)
    leading = [c for c in ("model", "backend") if c in frame.columns]
    return blank_repeats(frame, leading) if leading else frame


def markdown(report: Report) -> str:
    """The comparison for a pull-request comment."""
    title = f"## bench compare: {report.sides[0].label} (base) against {', '.join(s.label for s in report.sides[1:])}\n"
    parts = [title, markdown_table(sides_frame(report), 4), "", note_text(report), ""]
    parts += [f"- {n}" for n in report.notes] + ([""] if report.notes else [])
    for table in report.tables:
        parts.append(f"### {table.task} ({metric_label(table.main_score_name)})\n")
        if report.across == "models":
            parts += [markdown_table(models_frame(report, table.task), 3), ""]
        frame = _display(table, report)
        parts += [markdown_table(frame, len(table.key_columns) - 1), ""]
        unshared = unshared_text(table, report.sides)
        if unshared:
            parts += ["Cells not in every run:", ""] + [f"- {u}" for u in unshared] + [""]
        lexical = _lexical_lines(report, table.task)
        if lexical:
            parts += ["Lexical baselines on the same queries:", ""] + [f"- {x}" for x in lexical] + [""]
    return "\n".join(parts)


def _versus_json(v) -> dict | None:
    if v is None:
        return None
    return {"difference": v.difference, "ci_low": v.ci_low, "ci_high": v.ci_high, "p_value": v.p_value,
            "p_holm": v.p_holm, "n_queries": v.n_queries, "mark": v.mark, "compared": not v.problem,
            "problem": v.problem or None}  # fmt: skip


def report_json(report: Report) -> dict:
    """The comparison for machines: every line with each side's score and each comparison."""
    labels = [s.label for s in report.sides]
    return {
        "kind": "bench-compare", "across": report.across, "base": labels[0], "alpha": 0.05,
        "sides": [{"label": s.label, "run_id": s.run_id} for s in report.sides], "notes": report.notes,
        "tasks": [{"task": t.task, "main_score_name": t.main_score_name, "cells": [
            {**line.key, "scores": dict(zip(labels, line.scores)), "present_in": [lb for lb, s in zip(labels, line.scores) if s is not None],
             "versus_base": dict(zip(labels[1:], (_versus_json(v) for v in line.versus)))}
            for line in t.lines], "unshared": [key_text(line.key) for line in t.unshared()]} for t in report.tables],
    }  # fmt: skip


def _union_rows(report: Report) -> pd.DataFrame:
    frames = [s.rows for s in report.sides]
    if report.lexical is not None and not report.lexical.empty:
        frames.append(report.lexical.drop_duplicates(["model", "task"]))
    return pd.concat(frames, ignore_index=True)


def figures(report: Report) -> dict[str, bytes]:
    """Across models: per task, quality against size, speed and bytes (with two or more models) and
    every cell's Pareto plot, as PNG bytes by file stem; across runs: none."""
    if report.across != "models":
        return {}
    out = {}
    for task, frame in _union_rows(report).groupby("task", sort=True):
        fig = models_figure(frame, task)
        if fig is not None:
            out[f"{file_stem(task)}__models"] = figure_png(fig)
        out[f"{file_stem(task)}__pareto"] = figure_png(pareto_figure(frame, task))
    return out


def _figures(pngs: dict[str, bytes]) -> str:
    if not pngs:
        return ""
    return f'<h2>Plots</h2><div id="plots">{"".join(figure_html(name, png) for name, png in pngs.items())}</div>'


def html(report: Report, pngs: dict[str, bytes] | None = None) -> str:
    """The comparison as one self-contained page (``pngs``: ``figures(report)``, if drawn already)."""
    body = [f"<h2>Sides</h2>{table_html(sides_frame(report), 'sides', left=4)}<p>{escape(note_text(report))}</p>"]
    body += [f"<p>{escape(n)}</p>" for n in report.notes]
    for i, table in enumerate(report.tables):
        body.append(f"<h2>{escape(table.task)} ({escape(metric_label(table.main_score_name))})</h2>")
        if report.across == "models":
            body.append(table_html(models_frame(report, table.task), f"models-{i}", left=4))
        body.append(table_html(_display(table, report), f"compare-{i}", left=len(table.key_columns) - 1))
        unshared = unshared_text(table, report.sides)
        if unshared:
            body.append("<p>Cells not in every run:</p><ul>" + "".join(f"<li>{escape(u)}</li>" for u in unshared) + "</ul>")
    body.append(_figures(figures(report) if pngs is None else pngs))
    manifests = "".join(f"<h3>{escape(s.label)}</h3>{manifest_html(s.manifest, f'manifest-{i}')}"
                        for i, s in enumerate(report.sides))  # fmt: skip
    body.append(f"<h2>Runs</h2>{manifests}")
    title = f"bench compare: {report.sides[0].label} against {', '.join(s.label for s in report.sides[1:])}"
    return page_html(title, "".join(body))
