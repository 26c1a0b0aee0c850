"""Turn texts into cached float32 embeddings, encoding only what the cache lacks."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from bench import store
from bench.progress import Progress
from bench.cache import TMP_SUFFIX, EmbeddingCache, text_digest
from bench.encoders import Encoder, check_vectors, output_width, vector_identity
from bench.types import BackendSpec, ModelSpec, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodeStats:
    """What one role's embedding step cost."""

    n_texts: int
    n_encoded: int  # texts sent to the backend in this run (0 when all came from the cache)
    seconds: float  # backend wall time: measured now for encoded texts, recorded for cached ones


ROLE_PLURAL = {Role.QUERY: "queries", Role.DOCUMENT: "documents"}


def namespace_key(model: ModelSpec, backend: BackendSpec, role: Role, cache_root: Path | None = None) -> dict:
    """Everything besides the text that changes a vector: the backend's own fingerprint of the
    model, the role and the output width (``bench.encoders.vector_identity``)."""
    return vector_identity(model, backend, role, cache_root)


class LazyEncoder:
    """Loads the model on first use, so a fully cached sweep never loads weights."""

    def __init__(self, factory: Callable[[], Encoder]) -> None:
        self._factory = factory
        self._encoder: Encoder | None = None
        self.load_seconds: float | None = None  # how long loading took, once loaded

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def close(self) -> None:
        """Abort work in flight and release the encoder's resources (it stays counted as loaded)."""
        if self._encoder is not None:
            self._encoder.close()

    def get(self) -> Encoder:
        if self._encoder is None:
            t0 = time.perf_counter()
            self._encoder = self._factory()
            self.load_seconds = time.perf_counter() - t0
        return self._encoder


# Corpora whose vectors take more than this are assembled in a memory-mapped file, not in RAM.
MEMMAP_BYTES = int(os.environ.get("BENCH_MEMMAP_BYTES", 2**30))


def embed(
    texts: Mapping[str, str],
    role: Role,
    model: ModelSpec,
    backend: BackendSpec,
    cache: EmbeddingCache,
    encoder: LazyEncoder,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, EncodeStats]:
    """Embeddings for ``texts`` (in their mapping order), shape (len(texts), width of the backend).

    Vectors go straight from the cache chunks and the encoder into one output matrix, so the
    corpus is never held twice; above ``MEMMAP_BYTES`` that matrix is a memory-mapped file in
    the cache, checksummed, and reused only when its checksum still holds."""
    ids = list(texts)
    digests = [text_digest(texts[i]) for i in ids]
    namespace = cache.namespace(namespace_key(model, backend, role, cache.root))
    rows_of: dict[bytes, list[int]] = defaultdict(list)
    for row, digest in enumerate(digests):
        rows_of[digest].append(row)
    width = output_width(model, backend)
    out, final = _output(cache, namespace.id, digests, width)
    if final is not None and final.is_file():
        return store.read_matrix(final), EncodeStats(len(ids), 0, 0.0)
    found, cached_seconds = namespace.fill(rows_of, out)
    todo = _missing(texts, ids, digests, found)
    sink = (rows_of, out, width)
    seconds = cached_seconds + _encode_missing(todo, role, model, namespace, encoder, chunk_size, sink)
    if final is not None:
        out.flush()
        store.seal_matrix(Path(out.filename), final)
        out = store.read_matrix(final)
    return out, EncodeStats(n_texts=len(ids), n_encoded=len(todo), seconds=seconds)


def _output(cache: EmbeddingCache, namespace_id: str, digests: list[bytes], dim: int):
    """An in-memory matrix, or (for large corpora) a memory-mapped file and its final path."""
    if len(digests) * dim * 4 <= MEMMAP_BYTES:
        return np.zeros((len(digests), dim), np.float32), None
    key = hashlib.sha256(b"".join(digests)).hexdigest()[:24]
    final = cache.root / "matrices" / f"{namespace_id}-{key}.npy"
    if final.is_file() and store.matrix_intact(final):
        return None, final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.pid{os.getpid()}{TMP_SUFFIX}")
    return store.open_matrix(tmp, (len(digests), dim), np.float32), final


def _missing(texts, ids, digests, found) -> list[tuple[bytes, str]]:
    """Unique texts without a cached vector, longest first (less padding per batch)."""
    todo = {d: texts[i] for i, d in zip(ids, digests) if d not in found}
    return sorted(todo.items(), key=lambda item: (-len(item[1]), item[0]))


def _encode_missing(todo, role, model, namespace, encoder, chunk_size, sink) -> float:
    """Encode in chunks of the encoder's ``chunk_size`` (or ``chunk_size`` when given), storing
    each finished chunk at once, so a kill loses at most the chunks in flight. Remote encoders
    take one request per chunk, ``parallel_requests`` at a time."""
    if not todo:
        return 0.0
    parallel = encoder.get().parallel_requests
    size = chunk_size or encoder.get().chunk_size
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    bar = Progress(f"encode {ROLE_PLURAL[role]} with {model.key}", len(todo))

    def run(chunk):
        t0 = time.perf_counter()
        raw = encoder.get().encode([text for _, text in chunk], role)
        return chunk, raw, time.perf_counter() - t0

    def finish(chunk, raw, elapsed):
        rows_of, out, width = sink  # where each digest's vector goes
        vectors = check_vectors(raw, len(chunk), width, f"{model.key} encoder")
        namespace.store([d for d, _ in chunk], vectors, elapsed / parallel)
        for (digest, _), vector in zip(chunk, vectors):
            out[rows_of[digest]] = vector
        bar.update(len(chunk))

    t0 = time.perf_counter()
    try:
        if parallel == 1:
            for chunk in chunks:
                finish(*run(chunk))
        else:
            _run_parallel(chunks, run, finish, parallel, encoder)
    finally:
        bar.close()
    return time.perf_counter() - t0


def _run_parallel(chunks, run, finish, parallel: int, encoder: "LazyEncoder") -> None:
    """Run chunks concurrently and store each as it finishes. On a failure or an interrupt, no
    further chunk is started, the requests in flight are cancelled at once (``encoder.close``),
    and every chunk that had already finished is still stored before the error is raised."""
    pool = ThreadPoolExecutor(parallel)
    futures = [pool.submit(run, c) for c in chunks]
    stored: set = set()
    try:
        for future in as_completed(futures):
            result = future.result()  # the first failure ends the loop
            finish(*result)
            stored.add(future)
    except BaseException:
        for future in futures:
            future.cancel()
        encoder.close()
        _store_finished(futures, stored, finish)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _store_finished(futures, stored: set, finish) -> None:
    for future in futures:
        if future in stored or not future.done() or future.cancelled() or future.exception() is not None:
            continue
        try:
            finish(*future.result())
        except Exception:  # noqa: BLE001 - storing what finished is best effort on the way out
            log.debug("could not store a finished chunk while stopping", exc_info=True)
