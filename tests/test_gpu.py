"""CUDA paths. Marked ``gpu``: excluded from ``make test``; they skip cleanly without a GPU."""

import numpy as np
import pytest

from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.measure import cuda_peak_bytes, cuda_peak_reset, matmul_peak_gflops
from bench.types import Role

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]  # fmt: skip

TEXTS = ["a short query", "a longer document about dense retrieval and quantization " * 5]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_torch_cuda_matches_cpu(minilm, tmp_path, dtype):
    cpu = make_encoder(minilm, parse_backend("torch"), EncoderOptions(2, tmp_path)).encode(TEXTS, Role.DOCUMENT)
    cuda_peak_reset()
    gpu = make_encoder(minilm, parse_backend(f"torch-cuda-{dtype}"), EncoderOptions(2, tmp_path))
    vectors = gpu.encode(TEXTS, Role.DOCUMENT)
    cos = (vectors * cpu).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(cpu, axis=1)
    assert cos.min() > (0.9999 if dtype == "float32" else 0.99)
    assert cuda_peak_bytes() > 0


def test_onnx_cuda_provider_matches_cpu(minilm, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without the CUDA execution provider")
    cpu = make_encoder(minilm, parse_backend("onnx"), EncoderOptions(2, tmp_path)).encode(TEXTS, Role.DOCUMENT)
    gpu = make_encoder(minilm, parse_backend("onnx-cuda"), EncoderOptions(2, tmp_path)).encode(TEXTS, Role.DOCUMENT)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)


def test_cuda_memory_is_reported_only_where_torch_allocates_it(minilm, tmp_path):
    """torch's allocator does not see ONNX Runtime's CUDA memory: onnx-cuda reports none, not 0."""
    from bench.measure import measure_encoder

    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without the CUDA execution provider")
    texts = TEXTS * 4
    onnx = make_encoder(minilm, parse_backend("onnx-cuda"), EncoderOptions(2, tmp_path))
    torch_gpu = make_encoder(minilm, parse_backend("torch-cuda"), EncoderOptions(2, tmp_path))
    assert measure_encoder(onnx, texts, TEXTS, 0.0, 1, 2).peak_cuda_bytes is None
    assert measure_encoder(torch_gpu, texts, TEXTS, 0.0, 1, 2).peak_cuda_bytes > 0


def test_matmul_peak_is_measured_on_the_device():
    assert matmul_peak_gflops("bfloat16", 4096, device="cuda") > 1000
