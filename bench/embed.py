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
from bench.contexts import chunk_digest
from bench.encoders import Encoder, check_vectors, output_width, vector_identity
from bench.errors import EncoderError
from bench.types import BackendSpec, ModelSpec, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodeStats:
    """What one role's embedding step cost."""

    n_texts: int
    n_encoded: int  # texts sent to the backend in this run (0 when all came from the cache)
    seconds: float  # backend wall time: measured now for encoded texts, recorded for cached ones


ROLE_PLURAL = {Role.QUERY: "queries", Role.DOCUMENT: "documents"}


def namespace_key(model: ModelSpec, backend: BackendSpec, role: Role, cache_root: Path | None = None,
                  context: str = "independent") -> dict:  # fmt: skip
    """Everything besides the text that changes a vector: the backend's own fingerprint of the
    model, the role, the output width, and for chunks embedded in their document the context and
    its rule (``bench.encoders.vector_identity``)."""
    return vector_identity(model, backend, role, cache_root, context)


class LazyEncoder:
    """Loads the model on first use, so a fully cached sweep never loads weights."""

    def __init__(self, factory: Callable[[], Encoder], verify: Callable[[], None] | None = None) -> None:
        self._factory, self._verify = factory, verify  # verify: run once loaded, outside the load's time
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
            from bench.encoders.exported import build_seconds

            t0, built = time.perf_counter(), build_seconds()
            encoder = self._factory()
            # loading only: an export or quantization built on first use is not part of it
            self.load_seconds = time.perf_counter() - t0 - (build_seconds() - built)
            if self._verify is not None:
                try:
                    self._verify()
                except BaseException:
                    encoder.close()
                    raise
            self._encoder = encoder
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
    width = output_width(model, backend)
    namespace, rows_of, out, final, found, cached_seconds = _from_cache(
        cache, namespace_key(model, backend, role, cache.root), digests, width)
    if found is None:
        return out, EncodeStats(len(ids), 0, 0.0)
    todo = _missing(texts, ids, digests, found)
    sink = (rows_of, out, width)
    seconds = cached_seconds + _encode_missing(todo, role, model, namespace, encoder, chunk_size, sink, backend.id)
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


def _from_cache(cache: EmbeddingCache, key: dict, digests: list[bytes], width: int):
    """The namespace of ``key``, the output rows of each digest, and the output matrix with every
    cached vector filled in: ``(namespace, rows_of, out, final, found, cached_seconds)``. When a
    sealed matrix of exactly these vectors exists, ``out`` is it and ``found`` is None."""
    namespace = cache.namespace(key)
    rows_of: dict[bytes, list[int]] = defaultdict(list)
    for row, digest in enumerate(digests):
        rows_of[digest].append(row)
    out, final = _output(cache, namespace.id, digests, width)
    if final is not None and final.is_file():
        return namespace, rows_of, store.read_matrix(final), final, None, 0.0
    found, cached_seconds = namespace.fill(rows_of, out)
    return namespace, rows_of, out, final, found, cached_seconds


def _encode_missing(todo, role, model, namespace, encoder, chunk_size, sink, backend_id: str) -> float:
    """Encode in chunks of the encoder's ``chunk_size`` (or ``chunk_size`` when given), storing
    each finished chunk at once, so a kill loses at most the chunks in flight. Remote encoders
    take one request per chunk, ``parallel_requests`` at a time."""
    if not todo:
        return 0.0
    parallel = encoder.get().parallel_requests
    size = chunk_size or encoder.get().chunk_size
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    bar = Progress(f"encode {ROLE_PLURAL[role]} with {model.key} on {backend_id}", len(todo))

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

    return _run_all(chunks, run, finish, parallel, encoder, bar)


def _run_all(chunks, run, finish, parallel: int, encoder: "LazyEncoder", bar) -> float:
    """Run every chunk (one at a time, or ``parallel`` at once) and store each as it finishes."""
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


def embed_in_context(corpus: Mapping[str, str], documents: Mapping[str, tuple[str, ...]], context: str,
                     model: ModelSpec, backend: BackendSpec, cache: EmbeddingCache,
                     encoder: LazyEncoder) -> tuple[np.ndarray, EncodeStats]:  # fmt: skip
    """Chunk vectors made in their documents (``context`` late or native), rows in ``corpus`` order.

    The cache finds each by ``bench.contexts.chunk_digest`` (its document's chunks and its
    position) in the namespace of the context; a document with any chunk missing is encoded whole,
    and each finished group of documents is stored at once, as ``embed`` does with texts."""
    ids = list(corpus)
    digest_of = {c: chunk_digest([corpus[x] for x in chunks], i)
                 for chunks in documents.values() for i, c in enumerate(chunks)}  # fmt: skip
    digests = [digest_of[c] for c in ids]
    width = output_width(model, backend)
    namespace, rows_of, out, final, found, cached_seconds = _from_cache(
        cache, namespace_key(model, backend, Role.DOCUMENT, cache.root, context), digests, width)
    if found is None:
        return out, EncodeStats(len(ids), 0, 0.0)
    todo = sorted((d for d, chunks in documents.items() if any(digest_of[c] not in found for c in chunks)),
                  key=lambda d: (-sum(len(corpus[c]) for c in documents[d]), d))  # fmt: skip
    batches = encoder.get().document_batches([[corpus[c] for c in documents[d]] for d in todo]) if todo else []
    groups = [[todo[i] for i in batch] for batch in batches]
    sink = (documents, corpus, digest_of, rows_of, out, width)
    seconds = cached_seconds + _encode_documents(groups, context, model, namespace, encoder, sink, backend.id)
    if final is not None:
        out.flush()
        store.seal_matrix(Path(out.filename), final)
        out = store.read_matrix(final)
    n_chunks = sum(len(documents[d]) for d in todo)
    return out, EncodeStats(n_texts=len(ids), n_encoded=n_chunks, seconds=seconds)


def _encode_documents(groups, context, model, namespace, encoder, sink, backend_id: str) -> float:
    """Encode groups of whole documents, storing each group's chunk vectors as it finishes."""
    if not groups:
        return 0.0
    documents, corpus, digest_of, rows_of, out, width = sink
    parallel = encoder.get().parallel_requests
    total = sum(len(documents[d]) for g in groups for d in g)
    bar = Progress(f"encode document chunks ({context}) with {model.key} on {backend_id}", total, unit="chunk")

    def run(group):
        t0 = time.perf_counter()
        raw = encoder.get().encode_documents([[corpus[c] for c in documents[d]] for d in group], context)
        return group, raw, time.perf_counter() - t0

    def finish(group, raw, elapsed):
        chunks = [c for d in group for c in documents[d]]
        if len(raw) != len(group):
            raise EncoderError(f"{model.key} encoder: returned {len(raw)} documents' vectors for {len(group)} documents")
        for d, vectors in zip(group, raw):
            check_vectors(vectors, len(documents[d]), width, f"{model.key} encoder (document {d})")
        vectors = np.concatenate([np.asarray(v, np.float32) for v in raw])
        namespace.store([digest_of[c] for c in chunks], vectors, elapsed / parallel)
        for c, vector in zip(chunks, vectors):
            out[rows_of[digest_of[c]]] = vector
        bar.update(len(chunks))

    return _run_all(groups, run, finish, parallel, encoder, bar)


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
