"""The openvino backend: sentence-transformers' vectors in float32 (within 1e-4 per component),
int8 from nncf within cosine 0.97 of them when calibrated on 16 texts (0.985 on SciFact abstracts
with the shipped 128-text calibration, a slow test), exports converted and quantized once and
reused only while their identity holds, and one-line errors when a package is missing."""

import json
import sys

import numpy as np
import pytest

from bench.encoders import EncoderOptions, make_encoder, openvino_rt, parse_backend
from bench.errors import InputError, Unavailable
from bench.types import Role
from tests.conftest import cosines

pytest.importorskip("openvino")

TEXTS = [
    "Dense retrieval maps queries and documents into one vector space.",
    "short",
    "Binary quantization keeps one bit per dimension, and rescoring recovers most of the loss "
    "by re-ranking candidates with the float query. " * 6,
    "OpenVINO runs the converted graph.",
]
FLOAT32_ATOL = 1e-4  # per component of unit vectors: the same arithmetic in another runtime
INT8_MIN_COSINE = 0.97  # int8 weights and activations calibrated on 16 texts, per text, against s-t


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the float32 conversion is made once and shared by the tests."""
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.fixture
def small_calibration(monkeypatch):
    """16 calibration texts instead of 128: quantizing takes seconds, not a minute."""
    monkeypatch.setitem(openvino_rt.CALIBRATION, "texts", 16)


def _fail(*args):
    pytest.fail("an export was made again although its identity had not changed")


def test_float32_equals_sentence_transformers_and_is_converted_once(minilm, reference, cache, monkeypatch):
    enc = make_encoder(minilm, parse_backend("openvino"), EncoderOptions(3, cache))
    np.testing.assert_allclose(enc.encode(TEXTS, Role.DOCUMENT), reference, atol=FLOAT32_ATOL)
    assert enc.n_parameters == 22_713_216 and enc.count_tokens(["hello world"]) == 4
    monkeypatch.setattr(openvino_rt, "_convert", _fail)
    again = make_encoder(minilm, parse_backend("openvino"), EncoderOptions(3, cache))
    np.testing.assert_array_equal(again.encode(TEXTS, Role.DOCUMENT), enc.encode(TEXTS, Role.DOCUMENT))
    assert not list(cache.rglob(".export-*"))


def test_batches_split_across_streams_land_in_their_rows(minilm, reference, cache):
    """Many batches in flight at once (one share per stream, pooled in OpenVINO's callbacks): each
    vector lands in its text's row, whatever order the streams finish in."""
    enc = make_encoder(minilm, parse_backend("openvino"), EncoderOptions(2, cache))
    order = np.random.default_rng(0).permutation(np.tile(np.arange(len(TEXTS)), 6))
    vectors = enc.encode([TEXTS[i] for i in order], Role.DOCUMENT)
    np.testing.assert_allclose(vectors, reference[order], atol=FLOAT32_ATOL)
    assert enc.encode([], Role.DOCUMENT).shape == (0, reference.shape[1])


def test_an_error_in_a_streams_callback_reaches_the_caller_and_the_encoder_recovers(minilm, reference, cache,
                                                                                    monkeypatch):  # fmt: skip
    enc = make_encoder(minilm, parse_backend("openvino"), EncoderOptions(1, cache))
    with monkeypatch.context() as patch:
        patch.setattr(enc.graph, "pool", lambda *a: (_ for _ in ()).throw(MemoryError("pooling failed")))
        with pytest.raises(MemoryError, match="pooling failed"):
            enc.encode(TEXTS, Role.DOCUMENT)
    np.testing.assert_allclose(enc.encode(TEXTS, Role.DOCUMENT), reference, atol=FLOAT32_ATOL)


def test_int8_stays_within_its_tolerance_and_is_quantized_once(minilm, reference, cache, monkeypatch,
                                                               small_calibration):  # fmt: skip
    int8 = make_encoder(minilm, parse_backend("openvino-cpu-int8"), EncoderOptions(3, cache))
    vectors = int8.encode(TEXTS, Role.DOCUMENT)
    assert cosines(vectors, reference).min() > INT8_MIN_COSINE
    assert not np.allclose(vectors, reference, atol=1e-3)  # int8 did run: not the float32 graph
    monkeypatch.setattr(openvino_rt, "_quantize", _fail)
    monkeypatch.setattr(openvino_rt, "_convert", _fail)
    make_encoder(minilm, parse_backend("openvino-cpu-int8"), EncoderOptions(3, cache))


def test_the_int8_identity_follows_quantization_settings_and_calibration_sample(minilm, monkeypatch, tmp_path):
    int8, fp32 = parse_backend("openvino-cpu-int8"), parse_backend("openvino")

    def keys():
        return (json.dumps(openvino_rt.fingerprint(minilm, int8, Role.DOCUMENT, tmp_path), sort_keys=True),
                json.dumps(openvino_rt.fingerprint(minilm, fp32, Role.DOCUMENT, tmp_path), sort_keys=True))  # fmt: skip

    base_int8, base_fp32 = keys()
    changes = [("QUANTIZATION", "preset", "performance"), ("QUANTIZATION", "batch_size", 8),
               ("CALIBRATION", "seed", 1), ("CALIBRATION", "texts", 64)]  # fmt: skip
    for table, key, value in changes:
        with monkeypatch.context() as patch:
            patch.setitem(getattr(openvino_rt, table), key, value)
            changed_int8, same_fp32 = keys()
            assert changed_int8 != base_int8 and same_fp32 == base_fp32, (table, key)
    real = openvino_rt._version
    with monkeypatch.context() as patch:  # another nncf: another int8 export, the same float32 one
        patch.setattr(openvino_rt, "_version", lambda package: "9.9" if package == "nncf" else real(package))
        assert keys()[0] != base_int8 and keys()[1] == base_fp32
    corpus = tmp_path / "tasks" / "data" / "scifact" / "corpus.jsonl"
    corpus.parent.mkdir(parents=True)
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": f"abstract {i}"}) + "\n" for i in range(200)))
    monkeypatch.setitem(openvino_rt.CALIBRATION, "corpus", "data/scifact/corpus.jsonl")
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tmp_path / "tasks"))
    assert keys()[0] != base_int8 and keys()[1] == base_fp32  # another calibration corpus: another identity


def test_a_missing_package_or_device_is_one_line(minilm, cache, monkeypatch, small_calibration):
    monkeypatch.setitem(sys.modules, "openvino", None)  # importing it now fails as if not installed
    with pytest.raises(Unavailable, match=r"^backend openvino-cpu-float32: the openvino package is not installed "
                                          r"\(pip install openvino\)$"):  # fmt: skip
        make_encoder(minilm, parse_backend("openvino"), EncoderOptions(3, cache))
    monkeypatch.delitem(sys.modules, "openvino")
    monkeypatch.setitem(sys.modules, "nncf", None)
    monkeypatch.setitem(openvino_rt.CALIBRATION, "seed", 7)  # an int8 export not made yet: nncf is needed
    with pytest.raises(Unavailable, match=r"^backend openvino-cpu-int8: the nncf package is not installed"):
        make_encoder(minilm, parse_backend("openvino-cpu-int8"), EncoderOptions(3, cache))
    with pytest.raises(InputError, match="backend openvino runs on cpu, not 'gpu'"):
        parse_backend("openvino-gpu")
    with pytest.raises(InputError, match="supports dtypes float32/int8, not 'bfloat16'"):
        parse_backend("openvino-cpu-bfloat16")


@pytest.mark.slow
def test_int8_with_its_own_calibration_keeps_the_vectors_of_scifact_abstracts(minilm, cache, scifact):
    """The shipped settings (128 calibration texts) on 64 abstracts the backend is benchmarked on."""
    from sentence_transformers import SentenceTransformer

    from bench.weights import weights_location

    texts = list(scifact[1].corpus.values())[:64]
    reference = SentenceTransformer(weights_location(minilm), device="cpu").encode(texts, convert_to_numpy=True)
    vectors = make_encoder(minilm, parse_backend("openvino-cpu-int8"), EncoderOptions(16, cache)).encode(
        texts, Role.DOCUMENT)  # fmt: skip
    cos = cosines(vectors, reference)
    assert cos.min() > 0.985 and cos.mean() > 0.995
