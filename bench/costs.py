"""What encoding costs per (model, backend, task), measured once and cached with the embeddings."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np

from bench import measure
from bench.cache import EmbeddingCache
from bench.embed import LazyEncoder, namespace_key
from bench.types import BackendSpec, ModelSpec, Role, SweepConfig, TaskData


def encoder_costs(config: SweepConfig, data: TaskData, lazy: LazyEncoder, cache: EmbeddingCache,
                  model: ModelSpec, backend: BackendSpec) -> dict:  # fmt: skip
    """Throughput, latency and memory of this (model, backend) on a seeded sample of the task.

    Measured when the model is loaded in this run anyway, or when no earlier measurement with the
    same settings is cached; otherwise the cached figures are reused (``cost_measured_at`` says when),
    so re-running or extending a sweep never loads the model just to time it."""
    if not config.measure:
        return {}
    rng = np.random.default_rng(config.seed)
    texts = list(data.corpus.values())
    picks = sorted(rng.choice(len(texts), min(len(texts), config.measure_documents), replace=False))
    sample = [texts[i] for i in picks]
    queries = list(data.queries.values())[: config.latency_queries]
    key = {**namespace_key(model, backend, Role.DOCUMENT, cache.root), "repeats": config.measure_repeats,
           "texts": hashlib.sha256("\0".join(sample + ["\1"] + queries).encode()).hexdigest()}  # fmt: skip
    cached = cache.load_record("costs", key)
    if cached is not None and not lazy.loaded:
        return cached
    cost = measure.measure_encoder(lazy.get(), sample, queries, lazy.load_seconds or 0.0, config.measure_repeats,
                                   config.latency_queries)  # fmt: skip
    row = {**cost.as_row(), "cost_measured_at": datetime.now(timezone.utc).isoformat()}
    cache.store_record("costs", key, row)
    return row
