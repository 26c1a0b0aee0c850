"""One self-contained HTML report of a finished run: manifest, quality with confidence intervals,
costs, and every plot inline (PNG data URIs); no external resources. The page fits a 1,400-pixel
window without horizontal scrolling: tables use short human column names, wrap their headers, and
show a repeated model, task or backend once."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from bench import report, results
from bench.cache import atomic_write_bytes
from bench.cells import is_lexical, retention_text
from bench.layout import groups, score_label
from bench.modelsize import with_parameters

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1280px;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-size:.8rem;max-width:100%}
td,th{border:1px solid #ccc;padding:.2rem .4rem;text-align:right}th{background:#f4f4f4;font-weight:600}
td.l,th.l{text-align:left}td{white-space:nowrap}td.wrap{white-space:normal;overflow-wrap:anywhere}
.worse{color:#b00020;font-weight:600}.better{color:#1b6e20;font-weight:600}.ci{color:#666;font-size:.75rem}
figure{display:inline-block;margin:.5rem;vertical-align:top}figure img{max-width:600px;width:100%;border:1px solid #eee}
figure.wide{display:block}figure.wide img{max-width:100%}
details pre{background:#f8f8f8;padding:.6rem;overflow:auto;font-size:.75rem;white-space:pre-wrap}
"""


def escape(value: object) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def table_html(frame: pd.DataFrame, table_id: str, left: int = 0, raw: bool = False) -> str:
    """A table of display values (escaped unless ``raw``: already HTML); the first ``left``
    columns left-aligned."""
    head = "".join(f"<th{' class=l' if i < left else ''}>{escape(c)}</th>" for i, c in enumerate(frame.columns))
    body = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td{' class=l' if i < left else ''}>{v if raw else escape(v)}</td>" for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _entry(shown) -> str:
    if shown is None:
        return ""
    title = {" ▼": "significantly worse", " ▲": "significantly better"}.get(shown.mark)
    cls = f' class="{"worse" if shown.mark == " ▼" else "better"}" title="{title} than float32 at full dimension"' \
        if title else ""  # fmt: skip
    ci = f'<br><span class="ci">[{shown.ci_low:.4f}, {shown.ci_high:.4f}]</span>' if pd.notna(shown.ci_low) else ""
    return f"<span{cls}>{shown.score:.4f}</span> ({retention_text(shown.retention)}){escape(shown.mark)}{ci}"


def _quality(frame: pd.DataFrame, lexical: pd.DataFrame, cmp, table_id: str) -> str:
    """Precision variants (then lexical baselines) down, dimensions across, as in table.md."""
    dims, lines = report.quality_grid(frame, lexical, cmp)
    out = pd.DataFrame({"precision": [escape(label) for label, _ in lines]})
    for i, dim in enumerate(dims):
        out[str(dim)] = [_entry(shown[i]) for _, shown in lines]
    return table_html(out, table_id, left=1, raw=True)


def _aggregates(rows: pd.DataFrame) -> str:
    """MTEB's aggregate of every task with more than one (split, subset) row; empty when none."""
    shown = report.aggregate_frame(rows)
    if shown.empty:
        return ""
    head = "<h2>MTEB aggregates</h2><p>unweighted mean of the main score over splits and subsets</p>"
    return head + table_html(shown, "aggregates", left=3)


def manifest_html(manifest: dict, table_id: str = "manifest") -> str:
    """A run's identity, machine, packages and resolved configuration."""
    keys = ["run_id", "status", "started_at", "finished_at", "git_sha", "git_dirty", "seed", "config_fingerprint"]
    rows = "".join(f"<tr><th class=l>{escape(k)}</th><td class=l>{escape(manifest.get(k))}</td></tr>" for k in keys)
    machine = "".join(f"<tr><th class=l>{escape(k)}</th><td class='l wrap'>{escape(v)}</td></tr>"
                      for k, v in manifest.get("machine", {}).items())  # fmt: skip
    packages = ", ".join(f"{escape(k)} {escape(v)}" for k, v in manifest.get("packages", {}).items())
    config = escape(json.dumps(manifest.get("config", {}), indent=1))
    return (f'<table id="{escape(table_id)}">{rows}{machine}<tr><th class=l>packages</th><td class="l wrap">{packages}'
            f"</td></tr></table><details><summary>resolved configuration</summary><pre>{config}</pre></details>")  # fmt: skip


def figure_html(name: str, png: bytes) -> str:
    """An inline figure; interval plots (``*__ci``) and multi-panel ones take the full width."""
    wide = name.endswith(("__ci", "__pareto", "__models"))
    data = base64.b64encode(png).decode()
    return (f'<figure class="plot{" wide" if wide else ""}"><img alt="{escape(name)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{escape(name.replace("__", " · "))}</figcaption></figure>')  # fmt: skip


def _plots(run_dir: Path) -> str:
    return "".join(figure_html(p.stem, p.read_bytes()) for p in sorted((run_dir / "plots").glob("*.png")))


def costs_html(rows: pd.DataFrame) -> str:
    """The encoding cost per (model, task, backend) and the search cost per cell."""
    encode = report.cost_frame(rows)
    search = report.cell_frame(rows, report.SEARCH_COLUMNS) if "search_queries_per_second" in rows.columns else None
    if encode.empty and search is None:
        return "<p>No cost measurements in this run.</p>"
    out = "" if encode.empty else table_html(encode, "encode-costs", left=3)
    return out + ("" if search is None else table_html(search, "search-costs", left=5))


def page_html(title: str, body: str) -> str:
    """A complete, self-contained page."""
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")  # fmt: skip


def render_html(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` (plots are rendered first if missing)."""
    run_dir = Path(run_dir)
    manifest, rows = results.read_run(run_dir)
    rows = with_parameters(rows, manifest)
    report.render(run_dir)
    quality, cmp, lexical = [], report.comparison_settings(run_dir, manifest), rows[is_lexical(rows)]
    for key, frame in groups(rows):
        gid = "quality-" + "-".join(str(key[k]) for k in report.GROUP if k != "context" or key[k] != "independent")
        table = _quality(frame, lexical[lexical.task == key["task"]], cmp, gid)
        context = f" · context {escape(key['context'])}" if key.get("context", "independent") != "independent" else ""
        quality.append(f"<h3>{escape(key['model'])} · {escape(key['task'])} · {escape(key['backend'])}{context}</h3>"
                       f"<p>{escape(score_label(frame))}, retention against float32 at full dimension, "
                       f"bootstrap 95% interval; <span class=worse>red ▼</span> / <span class=better>green ▲"
                       f"</span>: significantly worse / better than that reference (paired permutation test, "
                       f"p &lt; {report.ALPHA} after Holm's correction across the cells of the table); ×m: rescoring "
                       f"candidates = top_k × m.</p>{table}")  # fmt: skip
    body = (f'<h2>Run</h2>{manifest_html(manifest)}<h2>Quality</h2><div id="quality">{"".join(quality)}</div>'
            f'{_aggregates(rows)}<h2>Cost</h2><div id="costs">{costs_html(rows)}</div>'
            f'<h2>Plots</h2><div id="plots">{_plots(run_dir)}</div>')  # fmt: skip
    path = run_dir / "report.html"
    atomic_write_bytes(path, page_html(f"bench run {manifest['run_id']}", body).encode("utf-8"))
    return path
