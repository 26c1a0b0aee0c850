"""One self-contained HTML report of a finished run: manifest, quality with confidence intervals,
costs, and every plot inline (PNG data URIs); no external resources."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from bench import report, results
from bench.aggregate import task_aggregates
from bench.cache import atomic_write_bytes
from bench.cells import is_lexical

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.worse{color:#b00020;font-weight:600}.better{color:#1b6e20;font-weight:600}.ci{color:#666;font-size:.75rem}
figure{display:inline-block;margin:.5rem}figure img{max-width:560px;border:1px solid #eee}
details pre{background:#f8f8f8;padding:.6rem;overflow:auto;font-size:.75rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(frame: pd.DataFrame, table_id: str, left: int = 0) -> str:
    head = "".join(f"<th{' class=l' if i < left else ''}>{_e(c)}</th>" for i, c in enumerate(frame.columns))
    body = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td{' class=l' if i < left else ''}>{v}</td>" for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _entry(shown) -> str:
    if shown is None:
        return ""
    title = {" ▼": "significantly worse", " ▲": "significantly better"}.get(shown.mark)
    cls = f' class="{"worse" if shown.mark == " ▼" else "better"}" title="{title} than float32 at full dimension"' \
        if title else ""  # fmt: skip
    ci = f'<br><span class="ci">[{shown.ci_low:.4f}, {shown.ci_high:.4f}]</span>' if shown.ci_low is not None else ""
    return f"<span{cls}>{shown.score:.4f}</span> ({100 * shown.retention:.1f}%){_e(shown.mark)}{ci}"


def _quality(frame: pd.DataFrame, lexical: pd.DataFrame, cmp, table_id: str) -> str:
    """Precision variants (then lexical baselines) down, dimensions across, as in table.md."""
    dims, lines = report.quality_grid(frame, lexical, cmp)
    out = pd.DataFrame({"precision": [_e(label) for label, _ in lines]})
    for i, dim in enumerate(dims):
        out[str(dim)] = [_entry(shown[i]) for _, shown in lines]
    return _table(out, table_id, left=1)


def _aggregates(rows: pd.DataFrame) -> str:
    """MTEB's aggregate of every task with more than one (split, subset) row; empty when none."""
    agg = task_aggregates(rows)
    agg = agg[agg.entries > 1]
    if agg.empty:
        return ""
    shown = agg.assign(main_score=agg.main_score.map("{:.4f}".format)).map(_e)
    head = "<h2>MTEB aggregates</h2><p>unweighted mean of the main score over splits and subsets</p>"
    return head + _table(shown, "aggregates", left=3)


def _manifest(manifest: dict) -> str:
    keys = ["run_id", "status", "started_at", "finished_at", "git_sha", "git_dirty", "seed", "config_fingerprint"]
    rows = "".join(f"<tr><th class=l>{_e(k)}</th><td class=l>{_e(manifest.get(k))}</td></tr>" for k in keys)
    machine = "".join(f"<tr><th class=l>{_e(k)}</th><td class=l>{_e(v)}</td></tr>" for k, v in manifest.get("machine", {}).items())
    packages = ", ".join(f"{_e(k)} {_e(v)}" for k, v in manifest.get("packages", {}).items())
    config = _e(json.dumps(manifest.get("config", {}), indent=1))
    return (f'<table id="manifest">{rows}{machine}<tr><th class=l>packages</th><td class=l>{packages}</td></tr></table>'
            f"<details><summary>resolved configuration</summary><pre>{config}</pre></details>")  # fmt: skip


def _plots(run_dir: Path) -> str:
    figures = []
    for path in sorted((run_dir / "plots").glob("*.png")):
        data = base64.b64encode(path.read_bytes()).decode()
        figures.append(f'<figure class="plot"><img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{_e(path.stem.replace('__', ' · '))}</figcaption></figure>")  # fmt: skip
    return "".join(figures)


def _costs(rows: pd.DataFrame) -> str:
    cols = [c for c, _, _ in report.COST_COLUMNS if c in rows.columns]
    if not cols:
        return "<p>No cost measurements in this run.</p>"
    first = rows[~is_lexical(rows)].groupby(report.GROUP, sort=True).first().reset_index()[[*report.GROUP, *cols]]
    for c, _, template in report.COST_COLUMNS:
        if c in first.columns:
            first[c] = [report.format_value(v, template, c) for v in first[c]]
    search = [c for c in ("index_bytes", "search_queries_per_second", "search_latency_p50_ms", "search_latency_p95_ms") if c in rows.columns]
    per_cell = rows[[*report.GROUP, "dim", "precision", "rescore_multiplier", "bytes_per_vector", *search]].copy()
    for c in search:
        per_cell[c] = [f"{v:,.1f}" if pd.notna(v) else "–" for v in per_cell[c]]
    return _table(first, "encode-costs", left=3) + _table(per_cell, "search-costs", left=3)


def render_html(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` (plots are rendered first if missing)."""
    run_dir = Path(run_dir)
    manifest, rows = results.read_run(run_dir)
    report.render(run_dir)
    quality, cmp, lexical = [], report.comparison_settings(run_dir, manifest), rows[is_lexical(rows)]
    for key, frame in report.groups(rows):
        gid = "quality-" + "-".join(str(key[k]) for k in report.GROUP if k != "context" or key[k] != "independent")
        table = _quality(frame, lexical[lexical.task == key["task"]], cmp, gid)
        context = f" · context {_e(key['context'])}" if key.get("context", "independent") != "independent" else ""
        quality.append(f"<h3>{_e(key['model'])} · {_e(key['task'])} · {_e(key['backend'])}{context}</h3>"
                       f"<p>{_e(frame.main_score_name.iloc[0])}, retention against float32 at full dimension, "
                       f"bootstrap 95% interval; <span class=worse>red ▼</span> / <span class=better>green ▲"
                       f"</span>: significantly worse / better than that reference (paired permutation test, "
                       f"p &lt; 0.05); ×m: rescoring candidates = top_k × m.</p>{table}")  # fmt: skip
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>bench run {_e(manifest['run_id'])}</title>"
            f"<style>{CSS}</style></head><body><h1>bench run {_e(manifest['run_id'])}</h1>"
            f'<h2>Run</h2>{_manifest(manifest)}<h2>Quality</h2><div id="quality">{"".join(quality)}</div>'
            f"{_aggregates(rows)}"
            f'<h2>Cost</h2><div id="costs">{_costs(rows)}</div><h2>Plots</h2><div id="plots">{_plots(run_dir)}</div>'
            "</body></html>")  # fmt: skip
    path = run_dir / "report.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
