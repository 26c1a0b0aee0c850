"""Kill a sweep with SIGKILL at several points, restart it, and lose nothing; race two runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.results import read_run
from bench.testing import write_beir_task, write_models

N_DOCS, N_QUERIES, BATCH = 40, 8, 4


@pytest.fixture
def setup(tmp_path):
    tasks = tmp_path / "tasks"
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    corpus = {f"d{i}": (f"title {i}", " ".join(words[(i * k) % 10] for k in range(1, 6 + i % 5))) for i in range(N_DOCS)}
    queries = {f"q{i}": f"{words[i]} {words[(i + 3) % 10]}" for i in range(N_QUERIES)}
    qrels = {f"q{i}": {f"d{(3 * i) % N_DOCS}": 1, f"d{(3 * i + 7) % N_DOCS}": 1} for i in range(N_QUERIES)}
    write_beir_task(tasks, "Synth", corpus, queries, qrels)
    write_models(tasks, {"toy": {"name": "test/toy", "revision": "v1", "dim": 32, "max_length": 64}})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"models: [toy]\ntasks: [Synth]\nbackends: [hashing]\ndims: [32, 16]\n"
                     f"precisions: [float32, int8, binary, binary-rescore]\nbatch_size: {BATCH}\n"
                     "top_k: 20\nmeasure: false\nbootstrap_resamples: 100\n")  # fmt: skip
    return tasks, sweep


def bench(tmp_path: Path, setup, out: str, cache: str, log: str, *extra: str, env: dict | None = None,
          background: bool = False):  # fmt: skip
    tasks, sweep = setup
    cmd = [sys.executable, "-m", "bench.cli", "run", str(sweep), "--tasks-dir", str(tasks), "--output-dir",
           str(tmp_path / out), "--cache-dir", str(tmp_path / cache), *extra]  # fmt: skip
    full_env = {**os.environ, "BENCH_HASHING_LOG": str(tmp_path / log), **(env or {})}
    if background:
        return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=300)


def encoded(tmp_path: Path, log: str) -> int:
    path = tmp_path / log
    return sum(int(line.split()[2]) for line in path.read_text().splitlines()) if path.exists() else 0


METRICS = ["model", "task", "backend", "dim", "precision", "main_score", "ndcg_at_10", "recall_at_20", "mrr_at_10",
           "main_score_ci_low", "main_score_ci_high"]  # fmt: skip


def _rows(run_dir: Path) -> pd.DataFrame:
    _, rows = read_run(run_dir)
    return rows[METRICS].sort_values(["dim", "precision"]).reset_index(drop=True)


@pytest.mark.parametrize("point,lost_at_most", [("encode-chunk:3", 0), ("cell:3", 0), ("write:4", BATCH)])
def test_killed_and_restarted_equals_uninterrupted(tmp_path, setup, point, lost_at_most):
    ok = bench(tmp_path, setup, "ref-out", "ref-cache", "ref.log", "--run-id", "r")
    assert ok.returncode == 0, ok.stderr
    killed = bench(tmp_path, setup, "out", "cache", "calls.log", "--run-id", "r", env={"BENCH_KILL_AT": point})
    assert killed.returncode == -signal.SIGKILL
    resumed = bench(tmp_path, setup, "out", "cache", "calls.log", "--run-id", "r")
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(_rows(tmp_path / "out" / "r"), _rows(tmp_path / "ref-out" / "r"))
    assert not _rows(tmp_path / "out" / "r").duplicated(["dim", "precision"]).any()
    unique_texts = N_DOCS + N_QUERIES
    assert encoded(tmp_path, "ref.log") == unique_texts
    assert unique_texts <= encoded(tmp_path, "calls.log") <= unique_texts + lost_at_most
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]
    leftovers += [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_two_runs_at_once_share_a_cache_and_results_folder(tmp_path, setup):
    slow = {"BENCH_HASHING_DELAY": "0.02"}
    a = bench(tmp_path, setup, "out", "cache", "a.log", env=slow, background=True)
    b = bench(tmp_path, setup, "out", "cache", "b.log", env=slow, background=True)
    for proc in (a, b):
        proc.wait(timeout=300)
        assert proc.returncode == 0, proc.stderr.read()
    runs = sorted((tmp_path / "out").iterdir())
    assert len(runs) == 2
    pd.testing.assert_frame_equal(_rows(runs[0]), _rows(runs[1]))
    again = bench(tmp_path, setup, "out", "cache", "c.log")  # the shared cache is whole and valid
    assert again.returncode == 0 and encoded(tmp_path, "c.log") == 0
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_the_same_run_id_twice_at_once_is_refused_not_corrupted(tmp_path, setup):
    first = bench(tmp_path, setup, "out", "cache", "a.log", "--run-id", "same", env={"BENCH_HASHING_DELAY": "0.2"},
                  background=True)  # fmt: skip
    import time

    deadline = time.monotonic() + 60
    while not (tmp_path / "out" / "same" / ".bench-run").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = bench(tmp_path, setup, "out", "cache", "b.log", "--run-id", "same")
    first.wait(timeout=300)
    assert first.returncode == 0
    assert second.returncode == 2 and "another bench process is running this run" in second.stderr
    assert len(_rows(tmp_path / "out" / "same")) == 8
