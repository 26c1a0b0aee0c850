"""Corpora larger than memory: memory-mapped embedding matrices and indexes built chunk by chunk."""

import numpy as np
import pytest

from bench import embed as embed_module
from bench import precisions, store
from bench.cache import EmbeddingCache
from bench.embed import LazyEncoder, embed
from bench.search import build_index
from bench.testing import HashingEncoder, vectors_for
from bench.types import BackendSpec, ModelSpec, Role

MODEL = ModelSpec(key="toy", name="test/toy", revision="v1", dim=16, max_length=32)
TEXTS = {f"t{i}": f"text {i} " + "word " * (i % 7) for i in range(300)}


def test_a_large_corpus_is_assembled_in_a_memory_mapped_file_and_reused(tmp_path, monkeypatch):
    in_memory, _ = embed(TEXTS, Role.DOCUMENT, MODEL, BackendSpec("hashing"), EmbeddingCache(tmp_path / "a"),
                         LazyEncoder(lambda: HashingEncoder(16)), chunk_size=32)  # fmt: skip
    monkeypatch.setattr(embed_module, "MEMMAP_BYTES", 0)
    cache = EmbeddingCache(tmp_path / "b")
    mapped, stats = embed(TEXTS, Role.DOCUMENT, MODEL, BackendSpec("hashing"), cache,
                          LazyEncoder(lambda: HashingEncoder(16)), chunk_size=32)  # fmt: skip
    assert isinstance(mapped, np.memmap) and stats.n_encoded == 300
    np.testing.assert_array_equal(mapped, in_memory)
    again, stats = embed(TEXTS, Role.DOCUMENT, MODEL, BackendSpec("hashing"), cache,
                         LazyEncoder(lambda: pytest.fail("encoded again")))  # fmt: skip
    assert stats.n_encoded == 0 and again.filename == mapped.filename
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("precision", precisions.names())
def test_disk_indexes_equal_in_memory_ones(tmp_path, monkeypatch, precision):
    monkeypatch.setattr(store, "CHUNK_ROWS", 37)  # many chunks
    rng = np.random.default_rng(0)
    docs = vectors_for(precision, rng.standard_normal((500, 40)).astype(np.float32))
    queries = vectors_for(precision, rng.standard_normal((12, 40)).astype(np.float32))
    source = store.write_matrix(tmp_path / "corpus.npy", docs.shape, np.float32, lambda a, b: docs[a:b])
    disk = build_index(precision, source, 24, folder=tmp_path)
    memory = build_index(precision, docs, 24)
    assert isinstance(disk.vectors, np.memmap)
    np.testing.assert_array_equal(np.asarray(disk.vectors), memory.vectors)
    a, b = disk.search(queries, 30), memory.search(queries, 30)
    np.testing.assert_array_equal(a.indices, b.indices)


def test_a_sweep_over_a_memory_mapped_corpus_gives_the_same_rows(toy_sweep, toy_tasks_dir, tmp_path, monkeypatch):
    from bench import runner
    from bench.config import load_config, with_overrides
    from bench.results import read_run

    config = with_overrides(load_config(toy_sweep), measure=False, bootstrap_resamples=50)
    _, expected = read_run(runner.run(config, toy_tasks_dir, run_id="memory"))
    monkeypatch.setattr(embed_module, "MEMMAP_BYTES", 0)
    _, rows = read_run(runner.run(with_overrides(config, cache_dir=tmp_path / "cache2"), toy_tasks_dir, run_id="disk"))
    cols = ["dim", "precision", "ndcg_at_10", "recall_at_10", "mrr_at_10", "index_bytes"]
    assert rows[cols].equals(expected[cols])
    assert list((tmp_path / "cache2" / "indexes").rglob("*.npy")) and list((tmp_path / "cache2" / "matrices").glob("*.npy"))
