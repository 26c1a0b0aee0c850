"""The ``torch`` backend: a sentence-transformers model on CPU or CUDA, float32/bfloat16/float16.

The model's own module chain (transformer, pooling, normalization) runs unchanged; the harness
only batches: texts are tokenized once and grouped by token length, and batches run under
``torch.inference_mode``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from bench.encoders import EncoderOptions, cuda_available
from bench.encoders.batching import sorted_batches
from bench.errors import InputError
from bench.models import check_remote_code, weights_location
from bench.types import BackendSpec, ModelSpec, Role

log = logging.getLogger(__name__)


def load_sentence_transformer(model: ModelSpec, device: str = "cpu", dtype: str = "float32"):
    """Load the model's sentence-transformers chain (local package weights or the pinned hub revision)."""
    import torch
    from sentence_transformers import SentenceTransformer

    check_remote_code(model)  # also for specs built in code, not read from models.yaml
    location = weights_location(model)
    log.info("loading %s from %s on %s/%s", model.name, location, device, dtype)
    try:
        st = SentenceTransformer(
            location,
            device=device,
            revision=None if (model.weights_package or model.path) else model.revision,
            trust_remote_code=model.trust_remote_code,
            model_kwargs={"dtype": getattr(torch, dtype)},
        )
    except OSError as exc:  # not on disk and no hub, or a broken checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"model {model.key}: cannot load weights from {location}: {first}") from None
    st.max_seq_length = model.max_length
    while len(st) > 1 and type(st[len(st) - 1]).__name__ in model.strip_modules:
        log.info("%s: dropping %s, the harness quantizes itself", model.key, type(st[len(st) - 1]).__name__)
        del st[len(st) - 1]
    return st


class SentenceTransformerEncoder:
    """Runs a sentence-transformers model in torch."""

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        if backend.device == "cuda" and not cuda_available():
            raise InputError(f"backend {backend.id}: CUDA is not available on this machine")
        self.model = load_sentence_transformer(model, backend.device, backend.dtype)
        self.model.eval()
        self.max_length, self.dim = model.max_length, model.dim
        self.batch_size = options.batch_size
        self.n_parameters = int(sum(p.numel() for p in self.model.parameters()))

    def _tokenize(self, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        return self.model.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=False
        ).data

    parallel_requests = 1
    chunk_size = 512

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(ids) for ids in self._tokenize(texts)["input_ids"])

    def close(self) -> None:
        """Nothing runs in the background."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        import torch

        tokens = self._tokenize(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        lengths = [len(ids) for ids in tokens["input_ids"]]
        for batch in sorted_batches(lengths, self.batch_size):
            rows = {k: [v[i] for i in batch] for k, v in tokens.items()}
            features = self.model.tokenizer.pad(rows, return_tensors="pt").data
            features = {k: v.to(self.model.device) for k, v in features.items()}
            with torch.inference_mode():
                vectors = self.model(features)["sentence_embedding"]
            out[batch] = vectors.float().cpu().numpy()
        return out

