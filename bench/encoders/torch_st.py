"""The ``torch`` backend: a sentence-transformers model on CPU or CUDA, float32/bfloat16/float16.

The checkpoint's own configuration rules, exactly as ``SentenceTransformer.encode_query`` and
``encode_document`` apply it: its module chain (transformer, pooling, normalization), its
``prompts`` and ``default_prompt_name``, pooling that excludes the prompt (``include_prompt:
false``) and its ``max_seq_length``. The registry may override the prompts (``prompts:``) and the
token limit (``max_length:``); rows then say so. The harness only batches: texts are grouped by
token length (less padding) and each group goes through sentence-transformers' encode.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from bench.encoders import EncoderOptions, cuda_available
from bench.encoders.batching import sorted_batches
from bench.errors import InputError, Unavailable
from bench.types import BackendSpec, ModelSpec, Role
from bench.weights import check_remote_code, local_folder, weights_identity, weights_location

log = logging.getLogger(__name__)


def load_sentence_transformer(model: ModelSpec, device: str = "cpu", dtype: str = "float32"):
    """Load the model's sentence-transformers chain (local package weights or the pinned hub revision)."""
    import torch
    from sentence_transformers import SentenceTransformer

    check_remote_code(model)  # also for specs built in code, not read from models.yaml
    location = weights_location(model)
    quiet_hub_progress()
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
        kind = Unavailable if local_folder(model) is None else InputError  # a hub id: the hub is what is missing
        raise kind(f"model {model.key}: cannot load weights from {location}: {first}") from None
    if model.max_length:  # the registry overrides the checkpoint's own limit
        st.max_seq_length = model.max_length
    while len(st) > 1 and type(st[len(st) - 1]).__name__ in model.strip_modules:
        log.info("%s: dropping %s, the harness quantizes itself", model.key, type(st[len(st) - 1]).__name__)
        del st[len(st) - 1]
    return st


def quiet_hub_progress() -> None:
    """No weight-loading bars in logs (bench prints its own progress lines there)."""
    from bench.progress import on_terminal

    if not on_terminal():
        import huggingface_hub.utils
        import transformers.utils.logging

        huggingface_hub.utils.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def fingerprint(model: ModelSpec, backend: BackendSpec, role: Role, cache_root) -> dict:
    """Everything that changes this backend's vectors (weights' content, module chain, prompts,
    token limit, dtype, device class, library versions). Computed without loading the model."""
    return {
        "weights": weights_identity(model, cache_root), "strip_modules": list(model.strip_modules),
        "prompt": model.prompts.get(role.value, "<checkpoint>"), "max_length": model.max_length or "<checkpoint>",
        "dtype": backend.dtype, "device": backend.device, "trust_remote_code": model.trust_remote_code,
        "libraries": _versions("sentence-transformers", "transformers", "torch"),
    }  # fmt: skip


def _versions(*packages: str) -> dict[str, str]:
    """Major.minor of each package: numerics may change between minor releases."""
    import importlib.metadata

    out = {}
    for name in packages:
        try:
            out[name] = ".".join(importlib.metadata.version(name).split(".")[:2])
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


class SentenceTransformerEncoder:
    """Runs a sentence-transformers model in torch, as its own encode_query/encode_document do."""

    parallel_requests = 1
    chunk_size = 512

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        if backend.device == "cuda" and not cuda_available():
            raise Unavailable(f"backend {backend.id}: CUDA is not available on this machine")
        import torch

        torch.manual_seed(options.seed)
        self.model = load_sentence_transformer(model, backend.device, backend.dtype)
        self.model.eval()
        self.dim, self.prompts = model.dim, dict(model.prompts)
        self.batch_size = options.batch_size
        self.n_parameters = int(sum(p.numel() for p in self.model.parameters()))

    def prompt(self, role: Role) -> str:
        """The prompt sentence-transformers prepends for ``role`` (the registry's, else the checkpoint's)."""
        if role.value in self.prompts:
            return self.prompts[role.value]
        names = ["query"] if role is Role.QUERY else ["document", "passage", "corpus"]
        name = next((n for n in names if n in self.model.prompts), self.model.default_prompt_name)
        return self.model.prompts.get(name, "") if name else ""

    def _lengths(self, texts: Sequence[str], role: Role) -> list[int]:
        prompt = self.prompt(role)
        tokens = self.model.tokenizer([prompt + t for t in texts], truncation=True,
                                      max_length=self.model.max_seq_length, padding=False)  # fmt: skip
        return [len(ids) for ids in tokens["input_ids"]]

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self._lengths(texts, Role.DOCUMENT))

    def close(self) -> None:
        """Nothing runs in the background."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        encode = self.model.encode_query if role is Role.QUERY else self.model.encode_document
        prompt = self.prompts.get(role.value)  # None: the checkpoint's prompts decide
        out = np.zeros((len(texts), self.dim), np.float32)
        for batch in sorted_batches(self._lengths(texts, role), self.batch_size):
            vectors = encode([texts[i] for i in batch], prompt=prompt, batch_size=len(batch), convert_to_numpy=True,
                             show_progress_bar=False)  # fmt: skip
            out[batch] = np.asarray(vectors, dtype=np.float32)
        return out
