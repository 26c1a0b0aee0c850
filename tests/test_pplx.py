"""pplx-embed-v1 support: the harness's int8-tanh and binary transforms of the raw pooled vectors
equal the checkpoint's native quantized output, shown on a stand-in with the same module chain
(Transformer -> mean Pooling -> FlexibleQuantizer) since the real weights cannot be downloaded."""

from __future__ import annotations

import numpy as np
import pytest

from bench import transforms as tf
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.errors import InputError
from bench.models import model_registry
from bench.testing import write_models, write_pplx_like_model
from bench.types import ModelSpec, Role
from tests.conftest import REPO

TEXTS = ["a claim about cells", "Dense retrieval with Matryoshka embeddings and int8 output. " * 4, "x"]


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """Native outputs of the stand-in checkpoint for each quantization, and the raw vectors the
    harness caches after dropping the quantizer."""
    from sentence_transformers import SentenceTransformer

    root = tmp_path_factory.mktemp("pplx")
    outputs = {}
    for q in ("int8", "binary", "ubinary"):
        folder = write_pplx_like_model(root / q, q)
        st = SentenceTransformer(str(folder), device="cpu", trust_remote_code=True)  # the custom quantizer
        outputs[q] = st.encode(TEXTS, convert_to_numpy=True)
    spec = ModelSpec(key="pplx-standin", name="test/pplx-standin", revision="0" * 40, dim=384, max_length=128,
                     path=str(root / "int8"), strip_modules=("FlexibleQuantizer",), trust_remote_code=True)  # fmt: skip
    raw = make_encoder(spec, parse_backend("torch"), EncoderOptions(2, root)).encode(TEXTS, Role.DOCUMENT)
    return outputs, raw


def test_raw_vectors_are_unnormalized_pooled_output(native):
    _, raw = native
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)  # no Normalize, no quantizer


def test_int8_tanh_equals_the_native_int8_output(native):
    outputs, raw = native
    assert np.array_equal(outputs["int8"], np.round(outputs["int8"]))  # floats holding integers
    np.testing.assert_array_equal(tf.int8_tanh(raw), outputs["int8"].astype(np.int8))


def test_binary_equals_the_native_binary_and_ubinary_outputs(native):
    outputs, raw = native
    np.testing.assert_array_equal(tf.unpack_signs(tf.binarize(raw), 384), outputs["binary"])
    np.testing.assert_array_equal(tf.binarize(raw), np.rint(outputs["ubinary"]).astype(np.uint8))


def test_native_int8_is_compared_by_cosine_in_the_int8_tanh_cell(native):
    from bench.search import build_index

    outputs, raw = native
    hits = build_index("int8-tanh", raw, 384).search(raw[:1], 3)
    native8 = outputs["int8"]
    cos = native8 @ native8[0] / np.linalg.norm(native8, axis=1) / np.linalg.norm(native8[0])
    np.testing.assert_allclose(np.sort(hits.scores[0])[::-1], np.sort(cos)[::-1], rtol=1e-5)


def test_the_registry_declares_both_pplx_models_with_pinned_revisions():
    reg = model_registry(REPO / "tasks")
    small, large = reg.get("pplx-embed-v1-0.6b"), reg.get("pplx-embed-v1-4b")
    assert (small.dim, large.dim) == (1024, 2560)
    assert small.revision == "1dc2ea99a948a2f17b103949ad02b0194a20c0a8"
    assert large.revision == "964a2aafe021f2bbda88ba17eb326eb849922435"
    assert small.trust_remote_code and small.strip_modules == ("FlexibleQuantizer",) and not small.prompts


def test_trust_remote_code_without_a_pinned_commit_is_refused(tmp_path):
    write_models(tmp_path, {"m": {"name": "org/m", "revision": "main", "dim": 8, "max_length": 8,
                                  "trust_remote_code": True}})  # fmt: skip
    with pytest.raises(InputError, match="must pin a 40-character commit revision, got 'main'"):
        model_registry(tmp_path)
