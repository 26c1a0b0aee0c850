"""Safe by construction: nothing outside a run is written or removed (whatever the names and
signals), no secret is ever printed or stored, and remote calls are bounded and stop when asked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.errors import EncoderError, InputError
from bench.names import check_name, file_stem
from bench.testing import FakeEmbeddingServer, write_beir_task, write_models
from bench.types import ModelSpec, Role, SweepConfig
from tests.conftest import TOY_MODEL

# --------------------------------------------------------------------------- names and cleanup


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else "dir") for p in sorted(root.rglob("*"))}


RUN_IDS = st.one_of(
    st.sampled_from(["", ".", "..", "/", "/tmp", "../x", "a/../../b", "x" * 101, "-rf", ".git", "a\\b", "a b",
                     "ok", "ok.1", "run_2", "R-3+4", "\u00e9", "a\nb", "~", "..."]),
    st.text(min_size=0, max_size=120),
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_id=RUN_IDS)
def test_no_run_id_writes_or_removes_anything_outside_the_output_folder(tmp_path, run_id):
    from bench.rundir import discard_if_empty, open_run_dir

    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    for place in (tmp_path, out):
        (place / "sentinel.txt").write_text("keep")
    (tmp_path / "other").mkdir(exist_ok=True)
    before = _tree(tmp_path)
    config = SweepConfig(models=("m",), tasks=("t",), backends=(), dims=(8,), precisions=(), output_dir=out,
                         cache_dir=tmp_path / "cache")  # fmt: skip
    try:
        run = open_run_dir(config, run_id)
    except InputError:
        assert _tree(tmp_path) == before  # refused before a byte was written
        return
    try:
        assert run.path.parent == out and run.path.name == run_id
        assert set(_tree(tmp_path)) - set(before) <= {f"out/{run_id}", f"out/{run_id}/cells", f"out/{run_id}/.bench-run"}
    finally:
        run.release()
        discard_if_empty(run)
    assert _tree(tmp_path) == before  # cleanup removed exactly what it made


@settings(max_examples=300, deadline=None)
@given(a=st.lists(st.text(max_size=40), min_size=1, max_size=5), b=st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_file_stems_stay_inside_their_folder_and_never_collide(a, b):
    for parts in (a, b):
        stem = file_stem(*parts)
        assert stem not in ("", ".", "..") and "/" not in stem and "\0" not in stem and "\\" not in stem
        assert len(stem.encode()) <= 200 and not stem.startswith(".")
        assert (Path("/folder") / stem).parent == Path("/folder")
    if a != b:
        assert file_stem(*a) != file_stem(*b)


@given(name=st.text(max_size=120))
def test_a_valid_name_is_exactly_one_path_component(name):
    try:
        check_name(name, "name")
    except InputError:
        return
    assert Path(name).name == name and name not in (".", "..") and not Path(name).is_absolute()
    assert "/" not in name and "\0" not in name and len(name) <= 100


def test_cell_keys_are_injective_across_names_that_used_to_collide():
    from bench.types import Cell

    a = Cell("m", "mteb:A/b@test", "torch-cpu-float32", 8, "float32")
    b = Cell("m", "mteb:A_b@test", "torch-cpu-float32", 8, "float32")
    c = Cell("m", "mteb:A/b_test", "torch-cpu-float32", 8, "float32")
    assert len({a.key, b.key, c.key}) == 3


# --------------------------------------------------------------------------- signals before the first cell


@pytest.fixture
def slow_setup(tmp_path):
    """A sweep whose encode takes a few seconds (a delay per call of the hashing backend)."""
    tasks = tmp_path / "tasks"
    corpus = {f"d{i}": ("", f"word{i} common text {i % 3}") for i in range(24)}
    write_beir_task(tasks, "Slow", corpus, {"q1": "word1", "q2": "word2"}, {"q1": {"d1": 1}, "q2": {"d2": 1}})
    write_models(tasks, {"toy": TOY_MODEL})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("models: [toy]\ntasks: [Slow]\nbackends: [hashing]\ndims: [32]\nprecisions: [float32]\n"
                     "batch_size: 2\nmeasure: false\nbootstrap_resamples: 20\n")  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    for place in (tmp_path, out):
        (place / "sentinel.txt").write_text("keep")
    return tasks, sweep, out


def _start(tmp_path, setup, run_id: str, env: dict) -> subprocess.Popen:
    tasks, sweep, out = setup
    cmd = [sys.executable, "-m", "bench.cli", "run", str(sweep), "--tasks-dir", str(tasks), "--output-dir", str(out),
           "--cache-dir", str(tmp_path / "cache"), "--run-id", run_id]  # fmt: skip
    full = {**os.environ, "BENCH_HASHING_LOG": str(tmp_path / "calls.log"), **env}
    return subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"


@pytest.mark.parametrize("how,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), ("backend failure", 3)])
def test_an_early_stop_removes_only_what_the_run_created(tmp_path, slow_setup, how, code):
    _, _, out = slow_setup
    before = _tree(tmp_path)
    env = {"BENCH_HASHING_FAIL": "1"} if how == "backend failure" else {"BENCH_HASHING_DELAY": "0.3"}
    proc = _start(tmp_path, slow_setup, "fresh", env)
    if how != "backend failure":
        _wait_for(tmp_path / "calls.log")  # encoding has begun: no cell is finished yet
        proc.send_signal(how)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.count("\n") == 1, err
    after = {k: v for k, v in _tree(tmp_path).items() if not k.startswith(("cache", "calls.log"))}
    assert after == {k: v for k, v in before.items() if not k.startswith("cache")}


@pytest.mark.parametrize("how,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_never_removes_a_run_folder_that_existed_before(tmp_path, slow_setup, how, code):
    _, _, out = slow_setup
    first = _start(tmp_path, slow_setup, "again", {"BENCH_HASHING_DELAY": "0.3"})
    _wait_for(tmp_path / "calls.log")
    first.kill()  # an earlier run, killed before its first cell: its folder stays
    first.wait()
    (out / "again" / "notes.txt").write_text("the user's own file")
    before = _tree(out)
    (tmp_path / "calls.log").unlink()
    proc = _start(tmp_path, slow_setup, "again", {"BENCH_HASHING_DELAY": "0.3"})
    _wait_for(tmp_path / "calls.log")
    proc.send_signal(how)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    after = _tree(out)
    assert set(before) <= set(after)
    assert all(after[k] == v for k, v in before.items() if k != "again/manifest.json")


# --------------------------------------------------------------------------- secrets

CANARY = "sk-canary-7f3e9a1b2c4d"


def _keyed_sweep(tmp_path, toy_sweep, url: str, extra: str = "") -> Path:
    path = tmp_path / "keyed.yaml"
    text = toy_sweep.read_text().replace("backends: [hashing]\n", "")
    path.write_text(text + f"backends:\n  - kind: http\n    name: keyed\n    url: '{url}'\n"
                    f"    api_key_env: BENCH_TEST_API_KEY\n    backoff: 0.01\n    timeout: 2\n    max_retries: 1\n{extra}")  # fmt: skip
    return path


@pytest.mark.parametrize("verbose", [False, True])
@pytest.mark.parametrize("fault", ["echo:400", "echo:401", "echo:403", "echo:429", "echo:500", "redirect"])
def test_a_server_echoing_the_key_never_gets_it_printed_or_stored(fault, verbose, toy_sweep, toy_tasks_dir, tmp_path,
                                                                   monkeypatch, capsys, caplog):  # fmt: skip
    monkeypatch.setenv("BENCH_TEST_API_KEY", CANARY)
    write_models(toy_tasks_dir, {"toy": {**TOY_MODEL, "role_field": "input_type"}})
    caplog.set_level("DEBUG")
    with FakeEmbeddingServer(faults=[fault] * 4) as server:
        sweep = _keyed_sweep(tmp_path, toy_sweep, server.url() + f"?api_key={CANARY}&user=me")
        code = main([*(["-v"] if verbose else []), "run", str(sweep), "--tasks-dir", str(toy_tasks_dir)])
    assert code == 3
    assert server.headers and all(h.get("Authorization") == f"Bearer {CANARY}" for h in server.headers)
    out = capsys.readouterr()
    files = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "keyed.yaml")
    records = "\n".join(r.getMessage() + str(r.args) + str(r.exc_text) for r in caplog.records)
    for place in (out.out, out.err, caplog.text, records, files.decode("utf-8", "replace")):
        assert CANARY not in place
    status = fault.split(":")[1] if ":" in fault else "307"
    assert f"HTTP {status}" in out.err and out.err.count("\n") == 1


def test_credentials_in_a_url_are_masked_in_every_message():
    from bench.redact import redact

    text = redact("POST https://user:hunter22@api.example.com/v1?api_key=abc123&x=1 Authorization: Bearer tok12345")
    assert "hunter22" not in text and "abc123" not in text and "tok12345" not in text and "x=1" in text


# --------------------------------------------------------------------------- bounded remote calls

MODEL = ModelSpec(key="toy", name="test/toy", revision="v1", dim=32, max_length=64)


def _encoder(server, **options):
    spec = {"kind": "http", "name": "fake", "url": server.url(), "timeout": 1, "max_retries": 0, "concurrency": 1,
            **options}  # fmt: skip
    return make_encoder(MODEL, parse_backend(spec), EncoderOptions(4))


def test_the_timeout_is_a_total_deadline_even_against_a_trickling_server():
    with FakeEmbeddingServer(faults=["trickle"], slow_seconds=1.0) as server:  # a byte every 0.1 s, forever
        encoder = _encoder(server, timeout=1.5)
        t0 = time.monotonic()
        with pytest.raises(EncoderError, match="no complete answer within the 1.5s timeout"):
            encoder.encode(["a", "b"], Role.DOCUMENT)
        assert time.monotonic() - t0 < 4
        encoder.close()


@pytest.mark.parametrize("fault", ["huge", "huge_unsized"])
def test_an_oversized_body_is_refused_not_read_whole(fault):
    with FakeEmbeddingServer(faults=[fault]) as server:
        encoder = _encoder(server, max_response_bytes=2**20, timeout=30)
        t0 = time.monotonic()
        with pytest.raises(EncoderError, match="exceeds max_response_bytes"):
            encoder.encode(["a"], Role.DOCUMENT)
        assert time.monotonic() - t0 < 10
        encoder.close()


def test_duplicate_indexes_in_an_answer_are_refused():
    with FakeEmbeddingServer(faults=["dup_index"]) as server:
        encoder = _encoder(server)
        with pytest.raises(EncoderError, match=r"'index' values are not a permutation of 0\.\.2"):
            encoder.encode(["a", "b", "c"], Role.DOCUMENT)
        encoder.close()


def test_ctrl_c_cancels_requests_in_flight_and_keeps_the_finished_ones(tmp_path, slow_setup):
    tasks, sweep, out = slow_setup
    with FakeEmbeddingServer(faults=[None, None] + ["slow"] * 40, slow_seconds=20) as server:
        spec = {"kind": "http", "name": "slow", "url": server.url(), "concurrency": 2, "batch_size": 2, "timeout": 60}
        sweep.write_text(sweep.read_text().replace("backends: [hashing]", f"backends: [{json.dumps(spec)}]"))
        proc = _start(tmp_path, slow_setup, "http", {})
        deadline = time.monotonic() + 60
        while len(server.requests) < 4 and time.monotonic() < deadline:  # 2 answered, 2 hanging
            time.sleep(0.02)
        time.sleep(0.3)
        sent_before, t0 = len(server.requests), time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        stopped_after = time.monotonic() - t0
        assert proc.returncode == 130, err
        assert stopped_after < 5  # not the 20 s the hanging requests would take
        assert len(server.requests) == sent_before == 4  # nothing new was sent after Ctrl-C
        server.faults = []  # the same server, healthy now: a rerun sends only what was not finished
        proc = _start(tmp_path, slow_setup, "http2", {})
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    texts = [len(b["input"]) for b in server.requests[4:]]
    assert sum(texts) == 24 + 2 - 2 * 2  # the corpus and queries, less the two finished requests


@pytest.mark.parametrize("fault", ["echo-forms:400", "echo-forms:401", "echo-cut:400"])
def test_a_key_echoed_encoded_or_cut_in_half_is_masked_too(fault, toy_sweep, toy_tasks_dir, tmp_path, monkeypatch,
                                                           capsys, caplog):  # fmt: skip
    """base64 (of the key, of ``Bearer KEY``, of ``user:KEY``), URL-encoded and JSON-escaped echoes,
    and a key whose first half ends the 4,096 bytes of an error body bench reads."""
    import base64
    from urllib.parse import quote

    key = "sk-canary/7f3e+9a1b2c4d5e6"
    monkeypatch.setenv("BENCH_TEST_API_KEY", key)
    write_models(toy_tasks_dir, {"toy": {**TOY_MODEL, "role_field": "input_type"}})
    caplog.set_level("DEBUG")
    with FakeEmbeddingServer(faults=[fault] * 4) as server:
        code = main(["-v", "run", str(_keyed_sweep(tmp_path, toy_sweep, server.url())), "--tasks-dir",
                     str(toy_tasks_dir)])  # fmt: skip
    assert code == 3
    out = capsys.readouterr()
    shown = out.out + out.err + caplog.text
    assert "HTTP 4" in out.err and out.err.count("\n") == 1
    half = key[: len(key) // 2 - 1]  # what fits before the cut, less one character
    for form in (key, quote(key, safe=""), key.replace("/", "\\/"), half,
                 base64.b64encode(key.encode()).decode()[:-4], base64.b64encode(f"Bearer {key}".encode()).decode()[12:-4],
                 base64.b64encode(f"user:{key}".encode()).decode()[8:-4]):  # fmt: skip
        assert form not in shown, form
