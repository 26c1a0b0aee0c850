"""The HTML report, checked in a real headless Chromium (installed by .ci/run; skipped where the
machine has none): content through the DOM, and a screenshot."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from bench import runner
from bench.cli import main
from bench.config import load_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def _chromium(tmp_path, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture
def html_report(toy_sweep, toy_tasks_dir, capsys):
    run_dir = runner.run(load_config(toy_sweep), toy_tasks_dir, run_id="html")
    assert main(["report", str(run_dir), "--html"]) == 0
    capsys.readouterr()
    return run_dir, run_dir / "report.html"


def test_report_is_self_contained(html_report):
    run_dir, page = html_report
    text = page.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing fetched from anywhere
    assert text.count('<figure class="plot') == len(list((run_dir / "plots").glob("*.png"))) == 7


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_in_a_real_browser(html_report, tmp_path):
    _, page = html_report
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert "<h1>bench run html</h1>" in dom
    manifest = re.search(r'<table id="manifest">(.*?)</table>', dom, re.S).group(1)
    assert "run_id" in manifest and "finished" in manifest
    quality = re.search(r'<table id="quality-toy-Toy-hashing-cpu-float32">(.*?)</table>', dom, re.S).group(1)
    assert quality.count("<tr>") == 1 + 6  # header and the 6 precisions (dims 32, 16, 8 across)
    assert quality.count('class="ci"') == 18  # a confidence interval in every cell
    assert re.search(r'<table id="encode-costs">.*docs/s|documents_per_second', dom, re.S)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', dom)
    assert {"toy__Toy__hashing-cpu-float32__score_vs_bytes", "toy__Toy__hashing-cpu-float32__score_vs_search_qps",
            "toy__Toy__hashing-cpu-float32__ci", "throughput_by_backend", "Toy__pareto"} <= set(images)  # fmt: skip
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert len(data) > 50_000  # a rendered page with tables and plots, not a blank one


def _scroll_width(tmp_path, page, width: int = 1400) -> tuple[int, int]:
    """(scrollWidth, clientWidth) of a page laid out in a real browser window ``width`` pixels wide."""
    probe = tmp_path / f"probe-{page.name}"
    script = ("<script>document.title='W:'+document.documentElement.scrollWidth+':'"
              "+document.documentElement.clientWidth</script></body>")  # fmt: skip
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script), encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", f"--window-size={width},1000", probe.as_uri())
    scroll, client = re.search(r"<title>W:(\d+):(\d+)</title>", dom).groups()
    return int(scroll), int(client)


@pytest.fixture
def long_names_report(tmp_path, capsys):
    """A measured run whose names are as long as real ones (model keys, backends, precisions)."""
    from bench.testing import synthetic_task, write_beir_task, write_models
    from tests.conftest import TOY_MODEL

    tasks = tmp_path / "tasks"
    write_beir_task(tasks, "SciFact-like-task-name", *synthetic_task(n_queries=12, n_docs=40))
    write_models(tasks, {"multilingual-e5-small-q4-like": {**TOY_MODEL, "n_parameters": 117_653_760}})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("models: [multilingual-e5-small-q4-like]\ntasks: [SciFact-like-task-name]\nbackends: [hashing]\n"
                     "dims: [32, 8]\nprecisions: [float32, float16, int8, int8-asym, int8-rescore, int8-tanh, "
                     "binary, binary-asym, binary-rescore]\nlexical: [bm25, bm25-stemmed]\ntop_k: 20\n"
                     f"bootstrap_resamples: 50\noutput_dir: {tmp_path / 'results'}\ncache_dir: {tmp_path / 'cache'}\n")  # fmt: skip
    run_dir = runner.run(load_config(sweep), tasks, run_id="long")
    assert main(["report", str(run_dir), "--html"]) == 0
    capsys.readouterr()
    return run_dir, run_dir / "report.html"


def test_the_cost_tables_say_their_units_and_show_each_group_once(long_names_report):
    _, page = long_names_report
    text = page.read_text(encoding="utf-8")
    encode = re.search(r'<table id="encode-costs">(.*?)</table>', text, re.S).group(1)
    assert "<th>peak RSS (MiB)</th>" in encode and "peak_rss_bytes" not in encode and "117,653,760" in encode
    search = re.search(r'<table id="search-costs">(.*?)</table>', text, re.S).group(1)
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", search)
    assert headers[:7] == ["model", "task", "backend", "dimension", "precision", "bytes/vector", "index bytes"]
    rows = re.findall(r"<tr>(.*?)</tr>", search, re.S)[1:]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in rows]
    assert [c[0] for c in cells].count("multilingual-e5-small-q4-like") == 1  # the model once, then blank
    assert all(re.fullmatch(r"[\d,]+", c[6]) for c in cells)  # index bytes: whole numbers
    assert 'class="plot wide"><img alt="multilingual-e5-small-q4-like__SciFact-like-task-name__hashing-cpu-float32__ci"' in text


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_report_fits_a_1400_pixel_window_without_horizontal_scrolling(long_names_report, tmp_path):
    _, page = long_names_report
    scroll, client = _scroll_width(tmp_path, page)
    assert 1400 - 20 <= client <= 1400 and scroll <= client, (scroll, client)  # client: less a vertical scrollbar
    narrow, _ = _scroll_width(tmp_path, page, width=700)  # the probe can see an overflow: a narrow window has one
    assert narrow > 700


def test_score_vs_dim_ticks_every_swept_dimension_and_keeps_coinciding_lines_apart():
    import pandas as pd

    from bench.figures import score_vs_dim_figure

    dims = [384, 256, 128, 64]
    frame = pd.DataFrame([{"model": "m", "task": "t", "backend": "b", "dim": d, "precision": p, "rescore_multiplier": 0,
                           "main_score": 0.5 + d / 1000, "main_score_name": "ndcg_at_10"}
                          for d in dims for p in ("float32", "float16", "int8")])  # float16 equals float32
    fig = score_vs_dim_figure(frame, {"model": "m", "task": "t", "backend": "b"})
    ax = fig.axes[0]
    assert sorted(ax.get_xticks()) == sorted(dims) and [t.get_text() for t in ax.get_xticklabels()] == ["64", "128", "256", "384"]
    assert ax.get_ylabel() == "nDCG@10"
    styles = [(line.get_linestyle(), line.get_marker(), line.get_markersize()) for line in ax.get_lines()]
    assert len(styles) == 3 and len(set(styles)) == 3  # each line drawn its own way: none hides another


def test_the_pareto_front_is_monotone_on_rows_gathered_from_several_runs():
    import pandas as pd

    from bench.figures import pareto_front

    a = pd.DataFrame({"cost": [2.0, 32.0, 128.0], "score": [0.07, 0.52, 0.50]})
    b = pd.DataFrame({"cost": [4.0, 64.0, 256.0], "score": [0.10, 0.47, 0.60]})
    front = pareto_front(pd.concat([a, b]), "cost", "score")  # index labels 0, 1, 2 twice
    assert list(front.cost) == [2.0, 4.0, 32.0, 256.0] and list(front.score) == [0.07, 0.10, 0.52, 0.60]


def test_retention_against_a_reference_scoring_zero_is_shown_as_undefined():
    """A reference cell scoring 0.0 has no retention: not 'nan%' or 'inf%' in the tables."""
    from bench.frames import rows_frame
    from bench.metrics import QUALITY_METRICS
    from bench.report import pivot_table

    base = dict(model="m", task="T", backend="b", rescore_multiplier=0, context="independent")
    records = [{"cell": {**base, "dim": dim, "precision": precision},
                "info": {"main_score_name": "ndcg_at_10", "bytes_per_vector": dim * 4},
                "metrics": dict.fromkeys(QUALITY_METRICS, score)}
               for dim, precision, score in ((32, "float32", 0.0), (16, "float32", 0.1), (32, "int8", 0.0))]  # fmt: skip
    frame = rows_frame(records)
    assert frame.retention.isna().all()
    table = pivot_table(frame)
    assert "nan%" not in table and "inf%" not in table and "0.1000 (–)" in table
    html = _entries(frame)
    assert "<span>0.1000</span> (–)" in html and "%" not in html


def _entries(frame):
    from bench.html import _entry
    from bench.report import Comparison, quality_grid

    _, lines = quality_grid(frame, frame.iloc[:0], Comparison(None))
    return " ".join(_entry(s) for _, shown in lines for s in shown if s)
