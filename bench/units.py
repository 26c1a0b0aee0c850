"""The units a sweep is made of, the one API every executor calls: plan (``bench.planning``),
then per (model, backend, task) an **encode unit** and its cost measurement, then per
(dimension, precision) a **cell unit** (read back a finished cell, or evaluate and write it).

An executor decides only where and in which order units run (``bench.executors``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import faults, measure, results, store
from bench.cache import EmbeddingCache
from bench.costs import encoder_costs
from bench.embed import EncodeStats, LazyEncoder, embed
from bench.errors import InputError
from bench.evaluate import SCORING_VERSION, evaluate_index
from bench.planning import Plan
from bench.search import build_index
from bench.types import BackendSpec, Cell, ModelSpec, Role, SweepConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedTask:
    """A task's vectors for one (model, backend), and what encoding them cost."""

    docs: np.ndarray
    queries: np.ndarray
    info: dict  # n_documents, n_queries, encode seconds per role, encoded_texts


def encode_unit(the_plan: Plan, model: ModelSpec, backend: BackendSpec, task: str, cache: EmbeddingCache,
                lazy: LazyEncoder) -> EncodedTask:  # fmt: skip
    """Vectors of a task's corpus and queries: from the cache, encoding only what it lacks."""
    data = the_plan.data[task]
    docs, doc_stats = embed(data.corpus, Role.DOCUMENT, model, backend, cache, lazy)
    queries, query_stats = embed(data.queries, Role.QUERY, model, backend, cache, lazy)
    return EncodedTask(docs, queries, _encode_columns(doc_stats, query_stats))


def _encode_columns(docs: EncodeStats, queries: EncodeStats) -> dict:
    return {
        "n_documents": docs.n_texts,
        "n_queries": queries.n_texts,
        "encode_seconds_documents": docs.seconds,
        "encode_seconds_queries": queries.seconds,
        "encoded_texts": docs.n_encoded + queries.n_encoded,
    }


def cached_vectors(the_plan: Plan, model: ModelSpec, backend: BackendSpec, task: str,
                   cache: EmbeddingCache) -> EncodedTask:  # fmt: skip
    """A task's vectors from the cache alone (an encode unit filled it); never encodes."""

    def missing():
        raise InputError(f"{model.key} on {task}: vectors missing from the shared cache {cache.root}")

    return encode_unit(the_plan, model, backend, task, cache, LazyEncoder(missing))


def unit_costs(the_plan: Plan, encoded: EncodedTask, task: str, lazy: LazyEncoder, cache: EmbeddingCache,
               model: ModelSpec, backend: BackendSpec) -> dict:  # fmt: skip
    """The cost columns every cell of this unit carries: encode statistics and encoder costs."""
    return {**encoded.info, **encoder_costs(the_plan.config, the_plan.data[task], lazy, cache, model, backend)}


def cell_path(run_dir: Path, cell: Cell) -> Path:
    return run_dir / "cells" / f"{cell.key}.json"


def cell_identity(the_plan: Plan, cell: Cell) -> dict:
    """Everything a cell's scores depend on: its grid point, the content of its task, the identity
    of its vectors, the search settings and the scoring code's version."""
    config, spec = the_plan.config, the_plan.tasks[cell.task]
    return {
        "model": cell.model, "task": cell.task, "backend": cell.backend, "dim": cell.dim,
        "precision": cell.precision.value, "task_data": the_plan.task_digests.get(cell.task),
        "split": spec.split, "subset": spec.subset, "main_score": spec.main_score, "dataset_revision": spec.revision,
        "query_filter": spec.query_filter, "vectors": the_plan.vector_digests.get((cell.model, cell.backend)),
        "top_k": config.top_k,
        "rescore_multiplier": config.rescore_multiplier, "limit": config.limit, "scoring": SCORING_VERSION,
    }  # fmt: skip


def read_cell(the_plan: Plan, run_dir: Path, cell: Cell) -> dict | None:
    """A cell finished by an earlier, interrupted run with this id, if its stored identity equals
    this one's; a cell of other inputs (edited qrels, other weights, older scoring) is never reused."""
    path = cell_path(run_dir, cell)
    if not path.is_file():
        return None
    record = results.read_json(path)
    if record.get("identity") != cell_identity(the_plan, cell):
        log.warning("cell %s was computed from other inputs than this run's; computing it again", cell.key)
        return None
    return record


def write_cell(the_plan: Plan, run_dir: Path, cell: Cell, record: dict) -> None:
    results.write_json(cell_path(run_dir, cell), {"identity": cell_identity(the_plan, cell), **record})
    faults.checkpoint("cell")


def evaluate_cell(the_plan: Plan, cell: Cell, model: ModelSpec, docs, queries, costs: dict) -> dict:
    """Build the cell's index, search exactly, score; the cell's record (not yet written)."""
    config, spec, data = the_plan.config, the_plan.tasks[cell.task], the_plan.data[cell.task]
    t0 = time.perf_counter()
    index = _build_index(cell, docs, config)
    scores = evaluate_index(index, queries, list(data.queries), list(data.corpus), data.qrels,
                            config.top_k, data.ignore_identical_ids)  # fmt: skip
    info = {
        "model_name": model.name, "model_revision": model.revision, "task_name": spec.name,
        "split": spec.split, "subset": spec.subset, "dataset_revision": spec.revision,
        "main_score_name": spec.main_score, "query_filter": spec.query_filter,
        "max_length": model.max_length or None, "max_length_source": "registry" if model.max_length else "checkpoint",
        "bytes_per_vector": cell.precision.bytes_per_vector(cell.dim), "index_bytes": index.nbytes,
        "search_seconds": scores.search_seconds,
        "search_queries_per_second": len(queries) / scores.search_seconds if scores.search_seconds > 0 else None,
        "eval_seconds": time.perf_counter() - t0, **_search_latency(config, index, queries, len(data.corpus)),
        **costs,
    }  # fmt: skip
    cell_keys = {"model": cell.model, "task": cell.task, "backend": cell.backend, "dim": cell.dim,
                 "precision": cell.precision.value}  # fmt: skip
    return {"cell": cell_keys, "info": info, "metrics": scores.means, "per_query": scores.per_query}


def _build_index(cell: Cell, docs: np.ndarray, config: SweepConfig):
    """In memory; or, for a memory-mapped corpus, chunk by chunk into a memory-mapped file."""
    if isinstance(docs, np.memmap):
        folder = config.cache_dir / "indexes" / Path(docs.filename).stem
        return store.build_disk_index(cell.precision, docs, cell.dim, folder, config.rescore_multiplier)
    return build_index(cell.precision, docs, cell.dim, config.rescore_multiplier)


def _search_latency(config: SweepConfig, index, queries: np.ndarray, n_docs: int) -> dict:
    if not config.measure:
        return {}
    k = min(config.top_k, n_docs)
    seconds = measure.search_latencies(lambda q: index.search(q, k), queries, config.search_latency_queries)
    return {"search_latency_p50_ms": measure.percentile_ms(seconds, 50),
            "search_latency_p95_ms": measure.percentile_ms(seconds, 95)}  # fmt: skip
