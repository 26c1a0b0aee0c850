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
    assert text.count('<figure class="plot">') == len(list((run_dir / "plots").glob("*.png"))) == 7


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
