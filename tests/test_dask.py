"""Sweeps on a real local Dask cluster bound to 127.0.0.1: the same rows as in process, even when
a worker is killed mid-sweep."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from bench import runner
from bench.config import load_config, with_overrides
from bench.results import read_run

distributed = pytest.importorskip("distributed")
COLUMNS = ["model", "task", "backend", "dim", "precision", "ndcg_at_10", "map_at_100", "recall_at_10", "mrr_at_10",
           "main_score_ci_low", "vs_reference_p_value", "index_bytes"]  # fmt: skip


def _rows(run_dir):
    _, rows = read_run(run_dir)
    return rows[COLUMNS].sort_values(["dim", "precision"]).reset_index(drop=True)


@pytest.fixture
def cluster():
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, worker_dashboard_address=None) as local:  # fmt: skip
        yield local


def _config(toy_sweep, tmp_path, **changes):
    return with_overrides(load_config(toy_sweep), measure=False, bootstrap_resamples=100, **changes)


def test_a_dask_sweep_writes_the_same_rows_as_an_in_process_one(cluster, toy_sweep, toy_tasks_dir, tmp_path):
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    local = runner.run(_config(toy_sweep, tmp_path), toy_tasks_dir, run_id="local")
    remote = runner.run(_config(toy_sweep, tmp_path, executor="dask", scheduler=cluster.scheduler_address,
                                cache_dir=tmp_path / "dask-cache"), toy_tasks_dir, run_id="dask")  # fmt: skip
    assert _rows(remote).equals(_rows(local))
    assert sorted(p.name for p in (remote / "cells").iterdir()) == sorted(p.name for p in (local / "cells").iterdir())


def test_a_killed_worker_is_retried_elsewhere(toy_sweep, toy_tasks_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_HASHING_DELAY", "0.3")  # workers inherit it: encodes take a while
    monkeypatch.setenv("BENCH_HASHING_LOG", str(tmp_path / "calls.log"))  # and count every text encoded
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, worker_dashboard_address=None) as cluster:  # fmt: skip
        killed = []

        def kill_the_encoding_worker():
            """Wait until a worker is encoding, then SIGKILL that worker's process."""
            with distributed.Client(cluster.scheduler_address) as client:
                pids = client.run(os.getpid)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not killed:
                    for address, keys in client.processing().items():
                        if any("encode_task" in str(k) for k in keys):
                            time.sleep(0.5)  # mid-encode: some chunks are stored, others not
                            os.kill(pids[address], signal.SIGKILL)
                            killed.append(address)
                            break
                    time.sleep(0.05)

        kill_one = kill_the_encoding_worker

        killer = threading.Thread(target=kill_one)
        killer.start()
        config = _config(toy_sweep, tmp_path, executor="dask", scheduler=cluster.scheduler_address,
                         batch_size=1, cache_dir=tmp_path / "dask-cache")  # fmt: skip
        remote = runner.run(config, toy_tasks_dir, run_id="dask")
        killer.join()
    assert killed, "no worker was killed during the encode"
    encoded = sum(int(line.split()[2]) for line in (tmp_path / "calls.log").read_text().splitlines())
    assert 6 + 3 <= encoded <= 6 + 3 + 1  # the retry re-sends at most the one text in flight
    monkeypatch.delenv("BENCH_HASHING_DELAY")
    monkeypatch.delenv("BENCH_HASHING_LOG")
    local = runner.run(_config(toy_sweep, tmp_path), toy_tasks_dir, run_id="local")
    assert _rows(remote).equals(_rows(local))


def test_dask_without_a_scheduler_is_a_usage_error(toy_sweep, toy_tasks_dir, tmp_path):
    from bench.errors import InputError

    with pytest.raises(InputError, match="needs --scheduler"):
        runner.run(_config(toy_sweep, tmp_path, executor="dask"), toy_tasks_dir)


def test_a_dask_encode_unit_measures_its_own_peak_memory(toy_sweep, toy_tasks_dir):
    """A worker process lives across units: each unit's peak RSS starts at its own start, not at
    the high-water mark of whatever ran on that worker before."""
    import numpy as np

    from bench import executors, measure
    from bench.encoders import make_encoder
    from bench.planning import plan

    the_plan = plan(with_overrides(load_config(toy_sweep), measure=True), toy_tasks_dir)
    if not measure.reset_peak_rss():
        pytest.skip("no resettable peak RSS on this platform")
    block = np.ones(400 * 2**20 // 8)  # 400 MiB touched, then freed
    del block
    before = measure.peak_rss_bytes()
    costs = executors.encode_task(the_plan, "toy", the_plan.config.backends[0], "Toy", make_encoder)
    assert costs["peak_rss_bytes"] < before - 200 * 2**20
