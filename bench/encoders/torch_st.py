"""The ``torch`` backend: a sentence-transformers model on CPU or CUDA."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from bench.encoders import BACKENDS
from bench.errors import InputError
from bench.models import weights_location
from bench.types import BackendSpec, ModelSpec, Role

log = logging.getLogger(__name__)


class SentenceTransformerEncoder:
    """Runs the model's own module chain (transformer, pooling, normalization) in torch."""

    def __init__(self, model: ModelSpec, backend: BackendSpec, batch_size: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if backend.device == "cuda" and not torch.cuda.is_available():
            raise InputError(f"backend {backend.id}: CUDA is not available on this machine")
        if model.trust_remote_code and not model.weights_package and not model.revision:
            raise InputError(f"model {model.key}: trust_remote_code needs a pinned revision")
        location = weights_location(model)
        log.info("loading %s from %s on %s", model.name, location, backend.id)
        self.model = SentenceTransformer(
            location,
            device=backend.device,
            revision=None if model.weights_package else model.revision,
            trust_remote_code=model.trust_remote_code,
            model_kwargs={"dtype": getattr(torch, backend.dtype)},
        )
        self.model.max_seq_length = model.max_length
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@BACKENDS.register("torch")
def _factory(model: ModelSpec, backend: BackendSpec, batch_size: int) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(model, backend, batch_size)
