"""The ``onnx`` backend: ONNX Runtime on CPU or CUDA, float32 or dynamically int8-quantized weights.

The model's transformer is exported once with ``torch.onnx.export`` (TorchScript exporter,
opset 17, eager attention) and cached beside the embeddings; ``onnx-*-int8`` adds ONNX Runtime's dynamic int8
quantization of that export. Tokenization uses the ``tokenizers`` library with the model's own
tokenizer file; pooling and normalization are the model's own (read from its
sentence-transformers configuration) and run in NumPy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.encoders import EncoderOptions
from bench.encoders.exported import (TOKENIZATION, TokenizedGraph, build_atomically, building, checksums,
                                     hidden_states_module, reader_versions, record_checksums, write_meta)
from bench.errors import Unavailable
from bench.types import BackendSpec, ModelSpec, Role
from bench.weights import weights_identity

log = logging.getLogger(__name__)
OPSET = 17
# Dynamic int8 of the MatMul weights, one scale per output channel: on MiniLM this keeps the
# vectors within cosine 0.99 of float32, where per-tensor scales drop to 0.90.
QUANTIZATION = {"weight_type": "QInt8", "per_channel": True, "op_types_to_quantize": ["MatMul"]}
# The attention traced: transformers' default (sdpa) exports as a decomposition (with IsNaN/Where
# guards for fully masked rows) that ONNX Runtime's int8 graph runs at about torch float32's
# speed; the eager MatMul/Softmax/MatMul graph runs about 1.6x faster (README, CPU backends).
ATTENTION = "eager"
# Dynamic quantization scales the activations of a whole run (one batch, its padding included)
# together, so a text's int8 vector would depend on the texts batched with it (cosine 0.989 between
# the same query alone and beside a long abstract): int8 runs each text alone. On CPU this is also
# faster than batches of 16 on SciFact abstracts (no padding; README, CPU backends).
INT8_BATCHING = "one text per run"


def export_identity(model: ModelSpec, cache_dir: Path) -> dict:
    """What an export depends on: the weights' content, the module chain, the token limit and
    the exporter (opset, attention traced, torch version, quantization settings)."""
    import importlib.metadata

    return {"weights": weights_identity(model, cache_dir), "strip_modules": list(model.strip_modules),
            "max_length": model.max_length or "<checkpoint>", "opset": OPSET, "attention": ATTENTION,
            "torch": importlib.metadata.version("torch"), "quantization": QUANTIZATION,
            "tokenization": TOKENIZATION, "readers": reader_versions()}  # fmt: skip


def export_dir(model: ModelSpec, cache_dir: Path) -> Path:
    """Where this model's export lives (keyed by everything the export depends on)."""
    key = json.dumps(export_identity(model, cache_dir), sort_keys=True)
    return Path(cache_dir) / "onnx" / hashlib.sha256(key.encode()).hexdigest()[:24]


def fingerprint(model: ModelSpec, backend: BackendSpec, role: Role, cache_root) -> dict:
    """The export's identity, the runtime that runs it (ONNX Runtime's major.minor), the dtype,
    the device class and the prompt."""
    import importlib.metadata

    try:
        runtime = ".".join(importlib.metadata.version("onnxruntime").split(".")[:2])
    except importlib.metadata.PackageNotFoundError:
        runtime = "absent"
    batching = {"batching": INT8_BATCHING} if backend.dtype == "int8" else {}
    return {**export_identity(model, cache_root), "onnxruntime": runtime, "dtype": backend.dtype,
            "device": backend.device, "prompt": model.prompts.get(role.value, "<checkpoint>"), **batching}  # fmt: skip


def _export(model: ModelSpec, target: Path) -> None:
    from bench.encoders.torch_st import load_sentence_transformer

    st = load_sentence_transformer(model)
    names = write_meta(st, target, "onnx")["inputs"]  # first: a chain it cannot pool is refused before tracing
    example = st.tokenizer(["an example input", "another"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with warnings.catch_warnings():  # the tracer's notes on Python-level branches it froze
        warnings.simplefilter("ignore")
        _trace(hidden_states_module(st, ATTENTION), tuple(example[n] for n in names), target, names, axes)


def _trace(module, example: tuple, target: Path, names: list[str], axes: dict) -> None:
    import torch

    torch.onnx.export(
        module, example, str(target / "model.onnx"),
        input_names=names, output_names=["last_hidden_state"],
        dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "sequence"}},
        opset_version=OPSET, dynamo=False,
    )  # fmt: skip


@contextlib.contextmanager
def quiet_root_logger(level: int = logging.ERROR):
    """Raise the root logger's level for a block (libraries that log hints through it)."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(level, previous))
    try:
        yield
    finally:
        root.setLevel(previous)


def _quantize(folder: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = folder / ".model-int8.tmp.onnx"
    settings = {**QUANTIZATION, "weight_type": getattr(QuantType, QUANTIZATION["weight_type"])}
    with quiet_root_logger():  # ONNX Runtime's hint to pre-process first says nothing to a bench user
        quantize_dynamic(str(folder / "model.onnx"), str(tmp), **settings)
    os.replace(tmp, folder / "model-int8.onnx")
    record_checksums(folder, ["model-int8.onnx"])  # listed once in place, so a reader never misses it


def ensure_export(model: ModelSpec, cache_dir: Path, int8: bool) -> Path:
    """The cached export folder, created atomically (temp folder, then rename) on first use."""
    folder = build_atomically(export_dir(model, cache_dir), lambda tmp: _export(model, tmp))
    if int8 and "model-int8.onnx" not in (checksums(folder) or {}):
        building(_quantize, folder)  # (a file of that name not listed is one a quantization left unfinished)
    return folder


class OnnxEncoder:
    """Runs an exported transformer in ONNX Runtime; pooling and normalization in NumPy."""

    parallel_requests = 1
    chunk_size = 512

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        import onnxruntime as ort

        provider = "CUDAExecutionProvider" if backend.device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise Unavailable(f"backend {backend.id}: onnxruntime has no {provider} here")
        folder = ensure_export(model, options.cache_dir, backend.dtype == "int8")
        path = folder / ("model-int8.onnx" if backend.dtype == "int8" else "model.onnx")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=[provider])
        # texts per run whatever the sweep's batch size (benchmarks time such a backend at it only)
        self.fixed_batch_size = 1 if backend.dtype == "int8" else None  # INT8_BATCHING
        self.graph = TokenizedGraph(folder, model, self.fixed_batch_size or options.batch_size,
                                    lambda feeds: self.session.run(None, feeds)[0])  # fmt: skip
        self.n_parameters = _count_parameters(folder / "model.onnx")  # int8's scales are not parameters

    def count_tokens(self, texts: Sequence[str]) -> int:
        return self.graph.count_tokens(texts)

    def close(self) -> None:
        """Nothing runs in the background."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        return self.graph.encode(texts, role)


def _count_parameters(path: Path) -> int:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return int(sum(int(np.prod(t.dims)) for t in graph.initializer if len(t.dims) > 0 and t.dims[0] > 1))

