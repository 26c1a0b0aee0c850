import numpy as np

from bench.cache import EmbeddingCache, text_digest
from bench.embed import LazyEncoder, embed, namespace_key
from bench.testing import HashingEncoder
from bench.types import BackendSpec, ModelSpec, Role

MODEL = ModelSpec(key="toy", name="test/toy", revision="v1", dim=16, max_length=32)
CPU = BackendSpec("hashing")
TEXTS = {f"t{i}": f"text number {i} " * (i % 5 + 1) for i in range(40)}


def _embed(cache, texts=TEXTS, role=Role.DOCUMENT, model=MODEL, backend=CPU, encoder=None):
    encoder = encoder or HashingEncoder(model.dim)
    matrix, stats = embed(texts, role, model, backend, cache, LazyEncoder(lambda: encoder), chunk_size=8)
    return matrix, stats, encoder


def test_vectors_come_back_in_input_order_and_match_the_encoder(tmp_path):
    matrix, stats, enc = _embed(EmbeddingCache(tmp_path))
    np.testing.assert_array_equal(matrix, HashingEncoder(16).encode(list(TEXTS.values()), Role.DOCUMENT))
    assert stats.n_encoded == 40 and sum(n for _, n in enc.calls) == 40
    assert len(list(tmp_path.rglob("chunk-*.npz"))) == 5  # one file per finished chunk


def test_second_call_reads_everything_from_disk(tmp_path):
    first, _, _ = _embed(EmbeddingCache(tmp_path))
    again, stats, enc = _embed(EmbeddingCache(tmp_path))
    np.testing.assert_array_equal(first, again)
    assert stats.n_encoded == 0 and enc.calls == []


def test_key_separates_roles_backends_and_prompts(tmp_path):
    keys = {
        "doc": namespace_key(MODEL, CPU, Role.DOCUMENT),
        "query": namespace_key(MODEL, CPU, Role.QUERY),
        "torch": namespace_key(MODEL, BackendSpec("torch", "cpu", "float32"), Role.QUERY),
        "bf16": namespace_key(MODEL, BackendSpec("torch", "cpu", "bfloat16"), Role.QUERY),
        "prompt": namespace_key(ModelSpec(**{**MODEL.__dict__, "prompts": {"query": "q: "}}), CPU, Role.QUERY),
        "len": namespace_key(ModelSpec(**{**MODEL.__dict__, "max_length": 8}), BackendSpec("torch"), Role.QUERY),
    }
    cache = EmbeddingCache(tmp_path)
    assert len({cache.namespace(k).id for k in keys.values()}) == len(keys)
    _embed(cache, role=Role.DOCUMENT)
    _, stats, _ = _embed(cache, role=Role.QUERY)  # same texts as queries: not served from documents
    assert stats.n_encoded == 40


def test_duplicate_texts_are_encoded_once(tmp_path):
    texts = {"a": "same", "b": "same", "c": "other"}
    matrix, stats, enc = _embed(EmbeddingCache(tmp_path), texts=texts)
    assert stats.n_encoded == 2 and np.array_equal(matrix[0], matrix[1])


def test_corrupted_chunk_is_detected_discarded_and_recomputed(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    good, _, _ = _embed(cache)
    victim = sorted(tmp_path.rglob("chunk-*.npz"))[0]
    data = bytearray(victim.read_bytes())
    data[-200] ^= 0xFF  # flip bits inside the stored arrays
    victim.write_bytes(bytes(data))
    again, stats, _ = _embed(cache)
    assert stats.n_encoded == 8 and "corrupted" in caplog.text
    np.testing.assert_array_equal(good, again)


def test_no_temporary_files_are_left(tmp_path):
    _embed(EmbeddingCache(tmp_path))
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_digest_is_sha256_of_utf8():
    import hashlib

    assert text_digest("é") == hashlib.sha256("é".encode()).digest()


def test_a_weights_file_replaced_with_its_size_and_modification_time_kept_is_read_again(tmp_path):
    import os

    from bench.weights import folder_digest

    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"\x01" * 4096)
    (weights / "config.json").write_text("{}")
    first = folder_digest(weights, tmp_path / "cache")
    assert folder_digest(weights, tmp_path / "cache") == first  # read back from the digest cache
    before = (weights / "model.safetensors").stat()
    (weights / "model.safetensors").write_bytes(b"\x02" * 4096)  # another checkpoint, the same size
    os.utime(weights / "model.safetensors", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (weights / "model.safetensors").stat().st_mtime_ns == before.st_mtime_ns
    assert folder_digest(weights, tmp_path / "cache") != first
    assert folder_digest(weights, tmp_path / "cache") == folder_digest(weights)  # the cache holds the new one
