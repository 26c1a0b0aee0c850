"""The ``hashing`` backend: weightless signed feature hashing of lower-cased words.

Each word adds +-1 to one of ``dim`` buckets (plus a small, fixed text-dependent offset so vectors
are not sparse). No weights, yet a meaningful ranking: it runs any model spec without its
weights, for tests and dry runs of a sweep.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import Sequence

import numpy as np

from bench.encoders import EncoderOptions, prompted
from bench.encoders.batching import by_chunks
from bench.types import BackendSpec, ModelSpec, Role

_WORD = re.compile(r"\w+")


def _bucket(word: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return h % dim, 1.0 if (h >> 32) & 1 else -1.0


def _log_call(role: Role, n: int) -> None:
    """For tests across processes: ``$BENCH_HASHING_LOG`` collects one line per encode call,
    ``$BENCH_HASHING_DELAY`` slows each call down (seconds), so kills and races can be staged, and
    ``$BENCH_HASHING_FAIL`` makes every call fail as a broken backend would (exit code 3)."""
    if os.environ.get("BENCH_HASHING_FAIL"):
        from bench.errors import EncoderError

        raise EncoderError("hashing backend: failing as $BENCH_HASHING_FAIL asks")
    if os.environ.get("BENCH_HASHING_LOG"):
        with open(os.environ["BENCH_HASHING_LOG"], "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {role.value} {n}\n")
    if os.environ.get("BENCH_HASHING_DELAY"):
        time.sleep(float(os.environ["BENCH_HASHING_DELAY"]))


class HashingEncoder:
    """Signed feature hashing: each word adds +-1 to one of ``dim`` buckets."""

    n_parameters = 0
    parallel_requests = 1
    chunk_size = 512

    def __init__(self, dim: int = 64, prompts: dict[str, str] | None = None) -> None:
        self.dim = dim
        self.prompts = dict(prompts or {})
        self.calls: list[tuple[Role, int]] = []  # (role, batch size) of every encode call

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        self.calls.append((role, len(texts)))
        _log_call(role, len(texts))
        texts = prompted(texts, self.prompts, role)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                col, sign = _bucket(word, self.dim)
                out[row, col] += sign
            out[row] += 0.01 * np.sin(np.arange(self.dim) + len(text))
        return out

    def document_batches(self, documents: Sequence[Sequence[str]]) -> list[list[int]]:
        """About ``chunk_size`` chunks per call, whole documents only."""
        return by_chunks(documents, self.chunk_size)

    def encode_documents(self, documents: Sequence[Sequence[str]], context: str) -> list[np.ndarray]:
        """A weightless stand-in for late chunking (context ``late``): each chunk's vector plus half
        the mean of its document's chunk vectors, so a chunk's vector depends on its document."""
        out = []
        for chunks in documents:
            alone = self.encode(list(chunks), Role.DOCUMENT)
            out.append(alone + 0.5 * alone.mean(axis=0, keepdims=True))
        return out

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(_WORD.findall(t)) for t in texts)

    def close(self) -> None:
        """Nothing runs in the background."""


ALGORITHM = 1  # bump when the hashing changes: cached vectors of the old one are not reused


def fingerprint(model: ModelSpec, backend: BackendSpec, role: Role, cache_root) -> dict:
    return {"algorithm": ALGORITHM, "dim": model.dim, "prompt": model.prompts.get(role.value, "")}


def context_fingerprint(model: ModelSpec, backend: BackendSpec, context: str) -> dict:
    return {"rule": "chunk + 0.5 * mean of its document's chunks", "version": 1}


def create(model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> HashingEncoder:
    encoder = HashingEncoder(model.dim, dict(model.prompts))
    encoder.chunk_size = options.batch_size  # small batches make many checkpoints in tests
    return encoder
