"""Local backends produce the model's vectors: torch in other dtypes and ONNX Runtime."""

import numpy as np
import pytest

from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.errors import InputError
from bench.types import Role
from tests.conftest import cosines

TEXTS = [
    "Dense retrieval maps queries and documents into one vector space.",
    "short",
    "Binary quantization keeps one bit per dimension, and rescoring recovers most of the loss "
    "by re-ranking candidates with the float query. " * 6,
    "ONNX Runtime runs the exported graph.",
]


def test_torch_backend_equals_sentence_transformers_encode(minilm, reference, tmp_path):
    enc = make_encoder(minilm, parse_backend("torch"), EncoderOptions(2, tmp_path))
    np.testing.assert_allclose(enc.encode(TEXTS, Role.DOCUMENT), reference, atol=2e-6)
    assert enc.n_parameters == 22_713_216
    assert enc.count_tokens(["hello world"]) == 4  # [CLS] hello world [SEP]


def test_torch_bfloat16_stays_close_to_float32(minilm, reference, tmp_path):
    enc = make_encoder(minilm, parse_backend("torch-cpu-bfloat16"), EncoderOptions(4, tmp_path))
    assert cosines(enc.encode(TEXTS, Role.DOCUMENT), reference).min() > 0.99


def test_onnx_float32_and_int8_are_exported_once_and_match(minilm, reference, tmp_path, monkeypatch):
    from bench.encoders import onnx_rt

    fp32 = make_encoder(minilm, parse_backend("onnx"), EncoderOptions(3, tmp_path))
    np.testing.assert_allclose(fp32.encode(TEXTS, Role.DOCUMENT), reference, atol=1e-4)
    int8 = make_encoder(minilm, parse_backend("onnx-cpu-int8"), EncoderOptions(3, tmp_path))
    vectors = int8.encode(TEXTS, Role.DOCUMENT)
    assert cosines(vectors, reference).min() > 0.98
    # a text's int8 vector does not depend on the texts encoded with it (dynamic quantization
    # would scale a batch's activations together): alone, or beside a long text, it is the same
    long = " ".join(["the immune response to a novel coronavirus infection in older patients"] * 20)
    np.testing.assert_array_equal(int8.encode([TEXTS[0]], Role.DOCUMENT)[0], vectors[0])
    np.testing.assert_array_equal(int8.encode([long, TEXTS[0]], Role.DOCUMENT)[1], vectors[0])
    assert fp32.count_tokens(["hello world"]) == 4
    assert fp32.n_parameters > 22_000_000
    assert int8.n_parameters == fp32.n_parameters  # the same weights; quantization scales are not parameters
    import onnx  # the eager attention graph (MatMul, Softmax, MatMul), not sdpa's decomposition

    ops = {n.op_type for n in onnx.load(str(onnx_rt.export_dir(minilm, tmp_path) / "model.onnx")).graph.node}
    assert "Softmax" in ops and "IsNaN" not in ops
    assert onnx_rt.export_identity(minilm, tmp_path)["attention"] == "eager"
    monkeypatch.setattr(onnx_rt, "_export", lambda *a: pytest.fail("exported twice"))
    make_encoder(minilm, parse_backend("onnx-cpu-int8"), EncoderOptions(3, tmp_path))
    assert not list(tmp_path.rglob("*.tmp*")) and not list(tmp_path.rglob(".export-*"))


@pytest.mark.parametrize("damaged", ["model.onnx", "model-int8.onnx"])
def test_a_damaged_onnx_export_is_removed_and_built_again(minilm, reference, tmp_path, caplog, damaged):
    """A byte of a weight flipped on disk changes the vectors by a little (and they would be cached
    as right): the export's checksums catch it before the graph runs."""
    from bench.encoders import onnx_rt

    int8 = make_encoder(minilm, parse_backend("onnx-cpu-int8"), EncoderOptions(3, tmp_path))
    first = int8.encode(TEXTS, Role.DOCUMENT)
    path = onnx_rt.export_dir(minilm, tmp_path) / damaged
    data = bytearray(path.read_bytes())
    data[len(data) - 4096] ^= 0x40  # inside the last initializer's raw data
    path.write_bytes(bytes(data))
    again = make_encoder(minilm, parse_backend("onnx-cpu-int8"), EncoderOptions(3, tmp_path))
    assert f"{damaged} does not match its checksum; removing the export and building it again" in caplog.text
    np.testing.assert_array_equal(again.encode(TEXTS, Role.DOCUMENT), first)
    assert cosines(first, reference).min() > 0.98


@pytest.mark.parametrize("name,message", [
    ("torch-tpu", "runs on cpu/cuda, not 'tpu'"),
    ("onnx-cpu-bfloat16", "supports dtypes float32/int8, not 'bfloat16'"),
    ("hashing-cuda", "runs on cpu, not 'cuda'"),
])  # fmt: skip
def test_backend_names_are_checked_per_kind(name, message):
    with pytest.raises(InputError, match=message):
        parse_backend(name)


def test_cuda_backends_fail_cleanly_without_a_gpu(minilm, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_gpu.py covers the CUDA paths")
    with pytest.raises(InputError, match="CUDA is not available"):
        make_encoder(minilm, parse_backend("torch-cuda-bfloat16"), EncoderOptions(2, tmp_path))
    with pytest.raises(InputError, match="no CUDAExecutionProvider"):
        make_encoder(minilm, parse_backend("onnx-cuda"), EncoderOptions(2, tmp_path))
