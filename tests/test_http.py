"""The http backend against a loopback fault-injecting server."""

from __future__ import annotations

import base64
import email.utils
import re
import time

import numpy as np
import pytest

from bench import runner
from bench.config import load_config, with_overrides
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.encoders.http import decode_vector, endpoint_label, retry_after_seconds
from bench.errors import EncoderError, InputError
from bench.results import read_run
from bench.testing import FakeEmbeddingServer, HashingEncoder, write_models
from bench.types import ModelSpec, Role
from tests.conftest import TOY_MODEL

E5_STYLE = {**TOY_MODEL, "role_field": "input_type", "role_values": {"query": "query", "document": "passage"}}
MODEL = ModelSpec(key="toy", name="test/toy", revision="v1", dim=32, max_length=64, role_field="input_type",
                  role_values={"query": "query", "document": "passage"})  # fmt: skip
TEXTS = ["alpha beta", "gamma", "delta epsilon zeta", "eta"]


def _backend(server, **options):
    spec = {"kind": "http", "name": "fake", "protocol": "openai", "url": server.url(), "timeout": 0.5,
            "max_retries": 3, "backoff": 0.01, "concurrency": 1, **options}  # fmt: skip
    return parse_backend(spec)


def _encoder(server, **options):
    return make_encoder(MODEL, _backend(server, **options), EncoderOptions(2))


def test_openai_body_carries_role_model_format_and_dimensions():
    with FakeEmbeddingServer(dim=16) as server:
        enc = _encoder(server, model="remote-e5", dimensions=16)
        vectors = enc.encode(TEXTS, Role.QUERY)
    body = server.requests[0]
    assert body == {"input": TEXTS, "model": "remote-e5", "encoding_format": "float", "dimensions": 16,
                    "input_type": "query"}  # fmt: skip
    np.testing.assert_allclose(vectors, HashingEncoder(16).encode(TEXTS, Role.QUERY), rtol=1e-6)


def test_tei_body_sends_normalize_false_and_truncate():
    with FakeEmbeddingServer() as server:
        enc = _encoder(server, protocol="tei", url=server.url("/embed"))
        enc.encode(TEXTS[:2], Role.DOCUMENT)
    assert server.requests[0] == {"inputs": TEXTS[:2], "normalize": False, "truncate": True,
                                  "input_type": "passage"}  # fmt: skip


def test_perplexity_style_base64_int8_and_binary_decode():
    ints = np.array([-128, -1, 0, 5, 127], dtype=np.int8)
    np.testing.assert_array_equal(decode_vector(base64.b64encode(ints.tobytes()).decode(), "base64_int8", 5), ints)
    signs = np.array([1, -1, -1, 1, 1, 1, -1, 1, -1, 1], dtype=np.float32)
    packed = np.packbits(signs > 0)
    np.testing.assert_array_equal(decode_vector(base64.b64encode(packed.tobytes()).decode(), "base64_binary", 10), signs)
    floats = np.array([0.5, -2.25], dtype="<f4")
    np.testing.assert_array_equal(decode_vector(base64.b64encode(floats.tobytes()).decode(), "base64", 2), floats)


def test_transient_failures_are_retried_until_the_answer_comes():
    with FakeEmbeddingServer(faults=["429", "500", "slow"], slow_seconds=1.5) as server:
        vectors = _encoder(server).encode(TEXTS, Role.DOCUMENT)
    assert len(server.requests) == 4
    np.testing.assert_allclose(vectors, HashingEncoder(32).encode(TEXTS, Role.DOCUMENT), rtol=1e-6)


@pytest.mark.parametrize("fault,message", [
    ("malformed", "malformed response"),
    ("wrong_dim", r"width \[31\], expected 32"),
    ("fewer", "returned 3 vectors for 4 texts"),
])  # fmt: skip
def test_permanent_faults_fail_at_once_naming_the_endpoint(fault, message):
    with FakeEmbeddingServer(faults=[fault]) as server:
        with pytest.raises(EncoderError, match=message) as info:
            _encoder(server).encode(TEXTS, Role.DOCUMENT)
    assert f"http://127.0.0.1:{server.port}/v1/embeddings" in str(info.value)
    assert len(server.requests) == 1


def test_nan_vectors_are_rejected_by_the_harness(tmp_path, toy_tasks_dir, toy_sweep):
    write_models(toy_tasks_dir, {"toy": E5_STYLE})
    with FakeEmbeddingServer(faults=["nan"]) as server:
        config = with_overrides(load_config(toy_sweep), backends=(_backend(server),), measure=False)
        with pytest.raises(EncoderError, match="NaN or Inf"):
            runner.run(config, toy_tasks_dir)


def test_giving_up_names_endpoint_status_and_attempts():
    with FakeEmbeddingServer(faults=["500"] * 10) as server:
        with pytest.raises(EncoderError, match=r"/v1/embeddings: gave up after 3 attempts \(HTTP 500\)"):
            _encoder(server, max_retries=2).encode(TEXTS, Role.DOCUMENT)


def test_retry_after_is_honoured():
    assert retry_after_seconds("2.5") == 2.5
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_seconds(future) <= 30
    with FakeEmbeddingServer() as server:
        enc = _encoder(server, backoff=10.0, max_backoff=60.0)
    assert enc._delay(0, 0.05) == 0.05
    assert 5.0 <= enc._delay(0, None) <= 10.0 and enc._delay(10, None) <= 60.0


def test_finished_batches_are_cached_and_a_rerun_sends_only_the_rest(toy_tasks_dir, toy_sweep):
    write_models(toy_tasks_dir, {"toy": E5_STYLE})
    base = with_overrides(load_config(toy_sweep), measure=False)
    with FakeEmbeddingServer(faults=[None, None, "malformed"]) as server:
        config = with_overrides(base, backends=(_backend(server, batch_size=2),))
        with pytest.raises(EncoderError):
            runner.run(config, toy_tasks_dir)
        sent_first = sum(len(b["input"]) for b in server.requests[:2])
        assert sent_first == 4
        sent = len(server.requests)
        server.faults = []  # the same server, healthy again
        run_dir = runner.run(config, toy_tasks_dir)
    docs_sent = sum(len(b["input"]) for b in server.requests[sent:] if b["input_type"] == "passage")
    assert docs_sent == 6 - 4  # only what the failed run had not finished
    _, rows = read_run(run_dir)
    assert len(rows) == 18 and rows.backend.iloc[0] == "http-fake"


def test_concurrent_requests_give_the_same_vectors(toy_tasks_dir, toy_sweep):
    write_models(toy_tasks_dir, {"toy": E5_STYLE})
    base = with_overrides(load_config(toy_sweep), measure=False)
    results = []
    for concurrency, cache in ((1, "c1"), (3, "c3")):
        with FakeEmbeddingServer() as server:
            config = with_overrides(base, backends=(_backend(server, batch_size=1, concurrency=concurrency),),
                                    cache_dir=base.cache_dir / cache)  # fmt: skip
            _, rows = read_run(runner.run(config, toy_tasks_dir))
            results.append(rows.set_index(["dim", "precision"]).ndcg_at_10.sort_index())
    assert results[0].equals(results[1])


def test_api_key_never_leaves_the_authorization_header(toy_tasks_dir, toy_sweep, tmp_path, monkeypatch, capsys, caplog):
    from bench.cli import main

    canary = "canary-9f8e7d6c5b4a-secret"
    monkeypatch.setenv("BENCH_TEST_API_KEY", canary)
    write_models(toy_tasks_dir, {"toy": E5_STYLE})
    caplog.set_level("DEBUG")
    with FakeEmbeddingServer(faults=["429", "500"]) as server:
        sweep = toy_sweep.read_text() + (
            f"backends:\n  - kind: http\n    name: keyed\n    url: {server.url()}\n    api_key_env: BENCH_TEST_API_KEY\n"
            "    backoff: 0.01\n    timeout: 1\n"
        )
        path = tmp_path / "keyed.yaml"
        path.write_text(sweep.replace("backends: [hashing]\n", ""))
        assert main(["-v", "run", str(path), "--tasks-dir", str(toy_tasks_dir)]) == 0
        server.faults = ["500"] * 20  # and a failing run, whose error message is printed
        assert main(["run", str(path), "--tasks-dir", str(toy_tasks_dir), "--cache-dir", str(tmp_path / "other")]) == 3
    assert all(h.get("Authorization") == f"Bearer {canary}" for h in server.headers)
    out = capsys.readouterr()
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert canary.encode() not in b"".join(written)
    assert canary not in out.out + out.err + caplog.text
    assert "gave up" in out.err


def test_missing_key_variable_is_a_clear_input_error(monkeypatch):
    monkeypatch.delenv("BENCH_NO_SUCH_KEY", raising=False)
    with FakeEmbeddingServer() as server:
        with pytest.raises(InputError, match="environment variable BENCH_NO_SUCH_KEY is not set"):
            _encoder(server, api_key_env="BENCH_NO_SUCH_KEY")


def test_endpoint_label_drops_credentials_and_query():
    assert endpoint_label("https://user:pw@api.example.com:8443/v1/embeddings?key=abc") == \
        "https://api.example.com:8443/v1/embeddings"  # fmt: skip


def test_remote_backend_options_are_validated():
    with pytest.raises(InputError, match=r"unknown key 'retries' \(did you mean 'max_retries'"):
        parse_backend({"kind": "http", "name": "x", "url": "http://127.0.0.1:1", "retries": 3})
    with pytest.raises(InputError, match="missing required key 'url'"):
        parse_backend({"kind": "http", "name": "x"})


def test_cache_key_follows_the_server_and_what_changes_vectors(monkeypatch):
    from bench.embed import namespace_key

    monkeypatch.setenv("X", "secret-key")

    def key(**options):
        spec = {"kind": "http", "name": "a", "url": "http://127.0.0.1:1/v1/embeddings", **options}
        return namespace_key(MODEL, parse_backend(spec), Role.QUERY)

    # the same server however it is written, and settings that do not change vectors
    assert key() == key(url="http://user:pw@127.0.0.1:1/v1/embeddings?api_key=k", timeout=5, api_key_env="X")
    assert key(url="http://Example.com/v1") == key(url="http://example.com:80/v1")
    # another server, backend name, protocol, model, format or width: other vectors
    assert key() != key(url="http://127.0.0.1:2/v1/embeddings") and key() != key(url="http://127.0.0.1:1/other")
    assert key() != key(name="b") and key() != key(protocol="tei") and key() != key(model="other")
    assert key() != key(dimensions=16) and key() != key(encoding_format="base64")
    assert "secret-key" not in str(key(api_key_env="X")) and "pw" not in str(key(url="http://u:pw@h/x"))
    assert namespace_key(MODEL, parse_backend("hashing"), Role.QUERY) != namespace_key(MODEL, parse_backend("hashing"), Role.DOCUMENT)


@pytest.mark.parametrize("item,fmt,message", [
    ("", "base64_binary", "0 bytes of packed bits for width 16, expected 2"),  # unpackbits pads with garbage
    (base64.b64encode(b"\xff").decode(), "base64_binary", "1 bytes of packed bits for width 16, expected 2"),
    (base64.b64encode(b"\xff" * 3).decode(), "base64_ubinary", "3 bytes of packed bits for width 16, expected 2"),
    (["0.12"] + [0.0] * 15, "float", "embedding holds str '0.12', not a number"),
    ([True] + [0.0] * 15, "float", "embedding holds bool 'True', not a number"),
    ([None] + [0.0] * 15, "float", "embedding holds NoneType"),
    ([[0.5]] + [0.0] * 15, "float", "embedding holds list"),
    ([1e39] + [0.0] * 15, "float", "beyond float32's range"),
])  # fmt: skip
def test_a_vector_that_is_not_width_many_numbers_is_refused(item, fmt, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        decode_vector(item, fmt, 16)


def test_an_integer_past_float64_is_a_malformed_response_not_a_crash():
    with FakeEmbeddingServer() as server:
        encoder = _encoder(server)
        with pytest.raises(EncoderError, match=r"malformed response \(OverflowError"):
            encoder._parse(b'{"data": [{"index": 0, "embedding": [1' + b"0" * 400 + b"]}]}", 1)
    np.testing.assert_array_equal(decode_vector([1, -2.5, 0], "float", 3), np.array([1, -2.5, 0], np.float32))


@pytest.mark.parametrize("output,what", [("int8", "not int8 codes"), ("binary", "not \\+-1 signs")])
def test_an_answer_that_is_not_the_declared_output_stops_at_the_first_request(output, what, toy_tasks_dir,
                                                                              toy_sweep):  # fmt: skip
    """Float vectors from a server declared to send int8 codes (or signs) are refused as they
    arrive, naming the endpoint, not after every request was sent."""
    write_models(toy_tasks_dir, {"toy": E5_STYLE})
    with FakeEmbeddingServer() as server:
        backend = _backend(server, output=output, batch_size=1)
        config = with_overrides(load_config(toy_sweep), backends=(backend,), precisions=(f"native-{output}",),
                                measure=False)  # fmt: skip
        with pytest.raises(EncoderError, match=f"/v1/embeddings: returned values that are {what}.*row 0"):
            runner.run(config, toy_tasks_dir)
    assert len(server.requests) == 1


def test_nan_in_an_answer_names_the_endpoint():
    with FakeEmbeddingServer(faults=["nan"]) as server:
        with pytest.raises(EncoderError, match=r"127\.0\.0\.1:\d+/v1/embeddings: returned NaN or Inf"):
            _encoder(server).encode(TEXTS, Role.DOCUMENT)


def test_a_servers_concurrency_and_batch_size_key_its_cost_measurement():
    """They change throughput, not vectors: the cost measurement is keyed on them, the vectors not."""
    from bench.costs import _settings
    from bench.encoders import vector_identity
    from bench.types import SweepConfig

    config = SweepConfig(models=("toy",), tasks=("Toy",), backends=(), dims=(32,), precisions=("float32",))
    with FakeEmbeddingServer() as server:
        slow, fast = _backend(server, concurrency=1, batch_size=8), _backend(server, concurrency=64, batch_size=512)
    assert vector_identity(MODEL, slow, Role.DOCUMENT, None) == vector_identity(MODEL, fast, Role.DOCUMENT, None)
    assert _settings(config, slow) != _settings(config, fast)



def test_a_servers_query_parameters_are_part_of_its_vectors_identity():
    """The server sees the URL's query (``?shift=3``, ``?model=...``): vectors asked with another
    query were reused from the cache. Credentials in it are no part of the key."""
    from bench.encoders.http import fingerprint


    model = ModelSpec(key="m", name="org/m", revision="r", dim=8)

    def key(url):
        return fingerprint(model, parse_backend({"kind": "http", "name": "s", "url": url}), Role.DOCUMENT, None)

    url = "http://127.0.0.1:9/v1/embeddings"
    assert "query_sha256" not in key(url)  # a URL without a query keeps the key it always had
    assert key(f"{url}?shift=0") != key(f"{url}?shift=3") != key(url)
    # credentials decide who may ask, not what comes back: left out, and no value is written out
    for secrets in ("api_key=SECRET123", "code=S3cr3tFunctionKey", "hf_token=hfabc12345", "X-Amz-Credential=AKIAX"):
        with_secret = key(f"{url}?shift=3&{secrets}")
        assert with_secret == key(f"{url}?shift=3") and secrets.split("=")[1] not in str(with_secret)
    assert "shift" not in str(key(f"{url}?shift=3"))  # a digest, not the parameters
