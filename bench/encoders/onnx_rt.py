"""The ``onnx`` backend: ONNX Runtime on CPU or CUDA, float32 or dynamically int8-quantized weights.

The model's transformer is exported once with ``torch.onnx.export`` (TorchScript exporter,
opset 17) and cached beside the embeddings; ``onnx-*-int8`` adds ONNX Runtime's dynamic int8
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
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.cache import new_dir_mode
from bench.encoders import EncoderOptions, prompted
from bench.encoders.batching import mean_pool, pad, sorted_batches
from bench.errors import InputError, Unavailable
from bench.types import BackendSpec, ModelSpec, Role
from bench.weights import weights_identity

log = logging.getLogger(__name__)
OPSET = 17
# Dynamic int8 of the MatMul weights, one scale per output channel: on MiniLM this keeps the
# vectors within cosine 0.99 of float32, where per-tensor scales drop to 0.90.
QUANTIZATION = {"weight_type": "QInt8", "per_channel": True, "op_types_to_quantize": ["MatMul"]}


def export_identity(model: ModelSpec, cache_dir: Path) -> dict:
    """What an export depends on: the weights' content, the module chain, the token limit and
    the exporter (opset, torch version, quantization settings)."""
    import importlib.metadata

    return {"weights": weights_identity(model, cache_dir), "strip_modules": list(model.strip_modules),
            "max_length": model.max_length or "<checkpoint>", "opset": OPSET,
            "torch": importlib.metadata.version("torch"), "quantization": QUANTIZATION}  # fmt: skip


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
    return {**export_identity(model, cache_root), "onnxruntime": runtime, "dtype": backend.dtype,
            "device": backend.device, "prompt": model.prompts.get(role.value, "<checkpoint>")}  # fmt: skip


def _pooling(st) -> dict:
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(st)
    if not (isinstance(modules[0], Transformer) and isinstance(modules[1], Pooling)):
        raise InputError("onnx backend: the model must be a Transformer followed by Pooling")
    if any(not isinstance(m, Normalize) for m in modules[2:]):
        raise InputError("onnx backend: only a Normalize module may follow Pooling")
    config = modules[1].get_config_dict()
    mode = config["pooling_mode"]
    if mode not in ("mean", "cls"):
        raise InputError(f"onnx backend: pooling mode {mode!r} is not supported (mean or cls)")
    if config.get("include_prompt", True) is False:
        raise InputError("onnx backend: pooling that leaves the prompt out (include_prompt: false) is not "
                         "supported; use the torch backend for this model")  # fmt: skip
    return {"mode": mode, "normalize": len(modules) > 2}


def _checkpoint_prompts(st) -> dict[str, str]:
    """The prompt per role sentence-transformers' encode_query / encode_document would use."""
    prompts, default = dict(st.prompts or {}), st.default_prompt_name
    out = {}
    for role, names in (("query", ["query"]), ("document", ["document", "passage", "corpus"])):
        name = next((n for n in names if n in prompts), default)
        out[role] = prompts.get(name, "") if name else ""
    return out


def _export(model: ModelSpec, target: Path) -> None:
    import torch

    from bench.encoders.torch_st import load_sentence_transformer

    st = load_sentence_transformer(model)
    auto = st[0].auto_model.eval()
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in st.tokenizer.model_input_names]

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = auto

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    example = st.tokenizer(["an example input", "another"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with warnings.catch_warnings():  # the tracer's notes on Python-level branches it froze
        warnings.simplefilter("ignore")
        _trace(HiddenStates(), tuple(example[n] for n in names), target, names, axes)
    (target / "tokenizer.json").write_text(st.tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    meta = {"inputs": names, "pad_id": st.tokenizer.pad_token_id, "max_length": st.max_seq_length,
            "prompts": _checkpoint_prompts(st), **_pooling(st)}  # fmt: skip
    (target / "config.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


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


def ensure_export(model: ModelSpec, cache_dir: Path, int8: bool) -> Path:
    """The cached export folder, created atomically (temp folder, then rename) on first use."""
    folder = export_dir(model, cache_dir)
    if not (folder / "config.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
        tmp.chmod(new_dir_mode())  # mkdtemp makes 0700; the export is a folder like any other
        try:
            _export(model, tmp)
            os.replace(tmp, folder) if not folder.exists() else shutil.rmtree(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if int8 and not (folder / "model-int8.onnx").is_file():
        _quantize(folder)
    return folder


class OnnxEncoder:
    """Runs an exported transformer in ONNX Runtime; pooling and normalization in NumPy."""

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        provider = "CUDAExecutionProvider" if backend.device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise Unavailable(f"backend {backend.id}: onnxruntime has no {provider} here")
        folder = ensure_export(model, options.cache_dir, backend.dtype == "int8")
        self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(model.max_length or self.config["max_length"])
        self.prompts = {**self.config.get("prompts", {}), **model.prompts}  # the registry's win
        path = folder / ("model-int8.onnx" if backend.dtype == "int8" else "model.onnx")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=[provider])
        self.batch_size = options.batch_size
        self.n_parameters = _count_parameters(path)

    def _tokenize(self, texts: Sequence[str], role: Role = Role.DOCUMENT):
        return self.tokenizer.encode_batch(prompted(texts, self.prompts, role))

    parallel_requests = 1
    chunk_size = 512

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(e.ids) for e in self._tokenize(texts))

    def close(self) -> None:
        """Nothing runs in the background."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        encodings = self._tokenize(texts, role)
        out: np.ndarray | None = None
        for batch in sorted_batches([len(e.ids) for e in encodings], self.batch_size):
            ids, mask = pad([encodings[i].ids for i in batch], self.config["pad_id"])
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {n: feeds[n] for n in self.config["inputs"]})[0]
            vectors = self._pool(hidden, mask)
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), np.float32)
            out[batch] = vectors
        return out if out is not None else np.zeros((0, 0), np.float32)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        vectors = mean_pool(hidden, mask) if self.config["mode"] == "mean" else hidden[:, 0]
        if self.config["normalize"]:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32)


def _count_parameters(path: Path) -> int:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return int(sum(int(np.prod(t.dims)) for t in graph.initializer if len(t.dims) > 0 and t.dims[0] > 1))

