"""What encoding costs per (model, backend, task), measured once and cached with the embeddings."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np

from bench import environment, measure
from bench.cache import EmbeddingCache
from bench.embed import LazyEncoder, namespace_key
from bench.types import BackendSpec, ModelSpec, Role, SweepConfig, TaskData


def encoder_costs(config: SweepConfig, data: TaskData, lazy: LazyEncoder, cache: EmbeddingCache,
                  model: ModelSpec, backend: BackendSpec, context: str = "independent") -> dict:  # fmt: skip
    """Throughput, latency and memory of this (model, backend) on a seeded sample of the task.

    Measured when the model is loaded in this run anyway, or when no earlier measurement with the
    same settings is cached; otherwise the cached figures are reused (``cost_measured_at`` says when),
    so re-running or extending a sweep never loads the model just to time it. Chunks embedded in
    their documents (``context`` late or native) are timed that way, on a seeded sample of whole
    documents holding at least ``measure_documents`` chunks; throughput then counts chunks."""
    if not config.measure:
        return {}
    queries = list(data.queries.values())[: config.latency_queries]
    if context != "independent":
        return _context_costs(config, data, lazy, cache, (model, backend, context), queries)
    rng = np.random.default_rng(config.seed)
    texts = list(data.corpus.values())
    picks = sorted(rng.choice(len(texts), min(len(texts), config.measure_documents), replace=False))
    sample = [texts[i] for i in picks]
    key = {**namespace_key(model, backend, Role.DOCUMENT, cache.root), **_settings(config, backend),
           "texts": hashlib.sha256("\0".join(sample + ["\1"] + queries).encode()).hexdigest()}  # fmt: skip
    cached = cache.load_record("costs", key)
    if cached is not None and not lazy.loaded:
        return cached
    cost = measure.measure_encoder(lazy.get(), sample, queries, lazy.load_seconds or 0.0, config.measure_repeats,
                                   config.latency_queries)  # fmt: skip
    row = {**cost.as_row(), "cost_measured_at": datetime.now(timezone.utc).isoformat()}
    cache.store_record("costs", key, row)
    return row


def _settings(config: SweepConfig, backend: BackendSpec) -> dict:
    """What decides a measurement besides the vectors' identity: its rules, the batch size, the
    backend's own settings (a server's concurrency and batch size) and the machine it ran on."""
    return {"repeats": config.measure_repeats, "batch_size": config.batch_size,
            "measure_version": measure.MEASURE_VERSION, "backend_options": [list(o) for o in backend.options],
            "machine": environment.timing_identity()}  # fmt: skip


def document_sample(data: TaskData, chunks: int, seed: int) -> list[list[str]]:
    """Whole documents (their chunk texts), in a seeded order, until at least ``chunks`` chunks."""
    names = sorted(data.documents)
    order = np.random.default_rng(seed).permutation(len(names))
    out, count = [], 0
    for i in order:
        if count >= chunks:
            break
        out.append([data.corpus[c] for c in data.documents[names[i]]])
        count += len(out[-1])
    return out


def _context_costs(config: SweepConfig, data: TaskData, lazy: LazyEncoder, cache: EmbeddingCache, unit: tuple,
                   queries: list[str]) -> dict:  # fmt: skip
    model, backend, context = unit
    sample = document_sample(data, config.measure_documents, config.seed)
    blob = "\2".join("\0".join(d) for d in sample) + "\1" + "\0".join(queries)
    key = {**namespace_key(model, backend, Role.DOCUMENT, cache.root, context), **_settings(config, backend),
           "documents": hashlib.sha256(blob.encode()).hexdigest()}  # fmt: skip
    cached = cache.load_record("costs", key)
    if cached is not None and not lazy.loaded:
        return cached
    cost = measure.measure_context_encoder(lazy.get(), sample, context, queries, lazy.load_seconds or 0.0,
                                           config.measure_repeats, config.latency_queries)  # fmt: skip
    row = {**cost.as_row(), "cost_measured_at": datetime.now(timezone.utc).isoformat()}
    cache.store_record("costs", key, row)
    return row
