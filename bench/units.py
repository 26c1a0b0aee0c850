"""The units a sweep is made of, the one API every executor calls: plan (``bench.planning``),
then per (model, backend, task) an **encode unit** and its cost measurement, then per
(dimension, precision, rescore multiplier) a **cell unit** (read back a finished cell, or
evaluate and write it), and per (lexical baseline, task) a **lexical cell unit**.

An executor decides only where and in which order units run (``bench.executors``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import calibration, environment, faults, lexical, measure, precisions, results, search
from bench.cache import EmbeddingCache, atomic_write_bytes
from bench.costs import encoder_costs
from bench.embed import EncodeStats, LazyEncoder, embed, embed_in_context
from bench.errors import InputError, StorageError
from bench.evaluate import SCORING_VERSION, evaluate_index
from bench.planning import Plan, digest
from bench.search import Index, build_index
from bench.types import BackendSpec, Cell, ModelSpec, Role, SweepConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedTask:
    """A task's vectors for one (model, backend), and what encoding them cost."""

    docs: np.ndarray
    queries: np.ndarray
    info: dict  # n_documents, n_queries, encode seconds per role, encoded_texts
    calibration: np.ndarray | None = None  # raw vectors of a calibration file, if the sweep has one


def encode_unit(the_plan: Plan, model: ModelSpec, backend: BackendSpec, task: str, cache: EmbeddingCache,
                lazy: LazyEncoder, context: str = "independent") -> EncodedTask:  # fmt: skip
    """Vectors of a task's corpus and queries: from the cache, encoding only what it lacks. The
    corpus is embedded in ``context`` (its chunks within their documents for late and native);
    queries are always embedded alone."""
    data = the_plan.data[task]
    if context == "independent":
        docs, doc_stats = embed(data.corpus, Role.DOCUMENT, model, backend, cache, lazy)
    else:
        docs, doc_stats = embed_in_context(data.corpus, data.documents, context, model, backend, cache, lazy)
    queries, query_stats = embed(data.queries, Role.QUERY, model, backend, cache, lazy)
    extra = None
    if the_plan.calibration_texts is not None:  # embedded as documents, cached like them
        extra, _ = embed(the_plan.calibration_texts, Role.DOCUMENT, model, backend, cache, lazy)
    return EncodedTask(docs, queries, _encode_columns(doc_stats, query_stats), extra)


def _encode_columns(docs: EncodeStats, queries: EncodeStats) -> dict:
    return {
        "n_documents": docs.n_texts,
        "n_queries": queries.n_texts,
        "encode_seconds_documents": docs.seconds,
        "encode_seconds_queries": queries.seconds,
        "encoded_texts": docs.n_encoded + queries.n_encoded,
    }


def cached_vectors(the_plan: Plan, model: ModelSpec, backend: BackendSpec, task: str,
                   cache: EmbeddingCache, context: str = "independent") -> EncodedTask:  # fmt: skip
    """A task's vectors from the cache alone (an encode unit filled it); never encodes."""

    def missing():
        raise InputError(f"{model.key} on {task}: vectors missing from the shared cache {cache.root}")

    return encode_unit(the_plan, model, backend, task, cache, LazyEncoder(missing), context)


def unit_costs(the_plan: Plan, encoded: EncodedTask, task: str, lazy: LazyEncoder, cache: EmbeddingCache,
               model: ModelSpec, backend: BackendSpec, context: str = "independent") -> dict:  # fmt: skip
    """The columns every cell of this unit carries from this run: the model's registry entry (its
    parameter count and token limit may change without changing the cell), encode statistics and
    encoder costs."""
    data = the_plan.data[task]
    return {**_model_columns(model), **encoded.info,
            **encoder_costs(the_plan.config, data, lazy, cache, model, backend, context)}  # fmt: skip


def cell_path(run_dir: Path, cell: Cell) -> Path:
    return run_dir / "cells" / f"{cell.key}.json"


def cell_identity(the_plan: Plan, cell: Cell) -> dict:
    """Everything a cell's scores depend on: its grid point, the content and rules of its task, the
    identity of its vectors, the search and calibration settings and the scoring code's version."""
    config, spec = the_plan.config, the_plan.tasks[cell.task]
    return {
        "model": cell.model, "task": cell.task, "backend": cell.backend, "dim": cell.dim,
        "precision": cell.precision, "rescore_multiplier": cell.rescore_multiplier,
        "task_data": the_plan.task_digests.get(cell.task), "split": spec.split, "subset": spec.subset,
        "main_score": spec.main_score, "dataset_revision": spec.revision, "query_filter": spec.query_filter,
        "vectors": the_plan.vector_digests.get((cell.model, cell.backend, cell.context)), "top_k": config.top_k,
        "calibration": calibration.describe(config.calibration), "limit": config.limit, "scoring": SCORING_VERSION,
        "lexical": _lexical_identity(cell), **_context_identity(the_plan, cell),
        "search": search.engine_identity(),
        # the cost columns it carries, and where they were measured
        "costs": [measure.MEASURE_VERSION, environment.timing_identity()] if config.measure else None,
    }  # fmt: skip


def _context_identity(the_plan: Plan, cell: Cell) -> dict:
    """How the cell's chunks were embedded, and the task's chunker; absent for a cell of a
    non-chunked task embedded alone, whose identity is what it was before contexts existed."""
    spec = the_plan.tasks[cell.task]
    if cell.context == "independent" and not spec.chunked:
        return {}
    return {"context": cell.context, "chunker": spec.chunker}


def _lexical_identity(cell: Cell) -> list[str] | None:
    """A lexical baseline's settings and library version (it has no vectors to key on)."""
    if cell.backend != lexical.BACKEND:
        return None
    spec = lexical.LEXICAL[cell.model]
    stemmer = [f"PyStemmer {environment.package_version('PyStemmer')}"] if spec.stemmer else []  # its stems are its tokens
    return [lexical.version(), spec.description, *stemmer]


CHECKSUM = "sha256"  # of the cell file's other content, serialized as ``cell_bytes`` writes it


def _checksum(body: dict) -> str:
    return hashlib.sha256(results.json_bytes(body)).hexdigest()


def _verified(path: Path) -> dict | None:
    """A cell file's content, or None (with a warning naming the file) where it is unreadable or
    its checksum does not match: a damaged cell is evaluated again, never read as scores."""
    try:
        record = results.read_json(path)
    except InputError as exc:
        log.warning("%s; evaluating that cell again", exc)
        return None
    stored = record.pop(CHECKSUM, None)
    if stored != _checksum(record):
        log.warning("%s: %s; evaluating that cell again", path,
                    "no checksum (written by an older bench)" if stored is None else "checksum mismatch")  # fmt: skip
        return None
    return record


def read_cell(the_plan: Plan, run_dir: Path, cell: Cell) -> dict | None:
    """A cell finished by an earlier, interrupted run with this id, if its file is intact and its
    stored identity equals this one's; a cell of other inputs (edited qrels, other weights, older
    scoring) is never reused."""
    path = cell_path(run_dir, cell)
    if not path.is_file():
        return None
    record = _verified(path)
    if record is None:
        return None
    if record.get("identity") != cell_identity(the_plan, cell):
        log.warning("cell %s was computed from other inputs than this run's; computing it again", cell.key)
        return None
    return record


def _measure_settings(config: SweepConfig) -> list:
    return [config.measure, config.measure_documents, config.measure_repeats, config.latency_queries,
            config.search_latency_queries, config.batch_size, config.seed]  # fmt: skip


def cell_cache_path(the_plan: Plan, cell: Cell) -> Path:
    """Where an evaluated cell is kept across runs: keyed by its identity and the measurement
    settings, so an identical sweep (another run id) reads it back instead of searching again."""
    key = digest({"identity": cell_identity(the_plan, cell), "measure": _measure_settings(the_plan.config)})
    return the_plan.config.cache_dir / "cells" / f"{key}.json"


def cached_cell(the_plan: Plan, cell: Cell) -> dict | None:
    """A cell evaluated by an earlier run with the same identity (its measurements keep their
    ``evaluated_at``); ``with_costs`` gives it this run's encode and cost columns."""
    path = cell_cache_path(the_plan, cell)
    if not path.is_file():
        return None
    record = _verified(path)  # a damaged cache entry is evaluated again (and rewritten)
    if record is None or record.get("identity") != cell_identity(the_plan, cell):
        return None
    return {k: v for k, v in record.items() if k != "identity"}


def with_costs(record: dict, costs: dict) -> dict:
    """``record`` carrying this run's columns of its unit (``unit_costs``: the model's registry
    entry, the encode statistics and the one cost measurement of its model, backend and task), in
    place of those it was stored with, so no two cells of a unit in one run report different costs
    and none reports a registry entry the run's manifest does not hold."""
    return {**record, "info": {**record["info"], **costs}}


def finished_with_costs(the_plan: Plan, run_dir: Path, cell: Cell, finished: dict, costs: dict) -> dict:
    """A cell this run id finished earlier, with this run's unit columns (``with_costs``); its file
    is rewritten only if they changed."""
    record = with_costs(finished, costs)
    if record != finished:
        write_cell(the_plan, run_dir, cell, record)
    return record


def cell_bytes(the_plan: Plan, cell: Cell, record: dict) -> bytes:
    """A cell's file: its identity, its record and their checksum, serialized once for the run
    and the cell cache."""
    body = {"identity": cell_identity(the_plan, cell), **{k: v for k, v in record.items() if k != "identity"}}
    return results.json_bytes({**body, CHECKSUM: _checksum(body)})


def keep_cell(the_plan: Plan, cell: Cell, record: dict, data: bytes | None = None) -> None:
    """Keep an evaluated cell in the cache for later runs (``data``: ``cell_bytes``, if made already)."""
    try:
        atomic_write_bytes(cell_cache_path(the_plan, cell), data or cell_bytes(the_plan, cell, record))
    except StorageError:
        log.warning("could not keep cell %s in the cache; a later identical run evaluates it again", cell.key)


def write_cell(the_plan: Plan, run_dir: Path, cell: Cell, record: dict, data: bytes | None = None) -> None:
    """Write a cell's file into the run folder (``data``: ``cell_bytes``, if made already)."""
    atomic_write_bytes(cell_path(run_dir, cell), data or cell_bytes(the_plan, cell, record))
    faults.checkpoint("cell")


def calibration_vectors(config: SweepConfig, encoded: EncodedTask) -> np.ndarray | None:
    """Raw vectors the calibrated precisions fit their ranges on; None means the whole corpus."""
    spec = config.calibration
    if spec.kind == "sample":
        return np.asarray(encoded.docs[calibration.sample_rows(len(encoded.docs), spec.size, config.seed)])
    return encoded.calibration if spec.kind == "file" else None


def evaluate_cell(the_plan: Plan, cell: Cell, model: ModelSpec, encoded: EncodedTask, costs: dict) -> dict:
    """Build the cell's index, search exactly, score; the cell's record (not yet written)."""
    config, data = the_plan.config, the_plan.data[cell.task]
    t0 = time.perf_counter()
    index = _build_index(cell, encoded, config)
    scores = evaluate_index(index, encoded.queries, list(data.queries), list(data.corpus), data.qrels,
                            config.top_k, data.ignore_identical_ids)  # fmt: skip
    info = {
        **_task_columns(the_plan, cell.task), **_model_columns(model),
        "bytes_per_vector": index.precision.bytes_per_vector(cell.dim), "index_bytes": index.nbytes,
        **_calibration_columns(config, index), **_search_columns(scores, len(encoded.queries)),
        "eval_seconds": time.perf_counter() - t0, "evaluated_at": datetime.now(timezone.utc).isoformat(),
        **_search_latency(config, index, encoded.queries, len(data.corpus)), **costs,
    }  # fmt: skip
    return _record(cell, info, scores)


def _task_columns(the_plan: Plan, task: str) -> dict:
    spec = the_plan.tasks[task]
    chunked = {"chunker": spec.chunker, "n_chunked_documents": len(the_plan.data[task].documents or {})} \
        if spec.chunked else {}  # fmt: skip
    return {"task_name": spec.name, "split": spec.split, "subset": spec.subset, "dataset_revision": spec.revision,
            "main_score_name": spec.main_score, "query_filter": spec.query_filter, **chunked}  # fmt: skip


def _model_columns(model: ModelSpec) -> dict:
    return {"model_name": model.name, "model_revision": model.revision, "max_length": model.max_length or None,
            "max_length_source": "registry" if model.max_length else "checkpoint",
            "registry_parameters": model.n_parameters or None}  # fmt: skip


def _calibration_columns(config: SweepConfig, index: Index) -> dict:
    """Which set the ranges were fitted on ("none" for precisions without ranges)."""
    if index.ranges is None:
        return {"calibration": "none", "calibration_vectors": 0}
    return {"calibration": calibration.describe(config.calibration), "calibration_vectors": index.calibration_size}


def _search_columns(scores, n_queries: int) -> dict:
    qps = n_queries / scores.search_seconds if scores.search_seconds > 0 else None
    return {"search_seconds": scores.search_seconds, "search_queries_per_second": qps}


def _record(cell: Cell, info: dict, scores) -> dict:
    return {
        "cell": {"model": cell.model, "task": cell.task, "backend": cell.backend, "dim": cell.dim,
                 "precision": cell.precision, "rescore_multiplier": cell.rescore_multiplier, "context": cell.context},
        "info": info, "metrics": scores.means, "per_query": scores.per_query,
    }  # fmt: skip


def _build_index(cell: Cell, encoded: EncodedTask, config: SweepConfig) -> Index:
    """In memory; or, for a memory-mapped corpus, chunk by chunk into a memory-mapped file."""
    docs, folder = encoded.docs, None
    if isinstance(docs, np.memmap):
        folder = config.cache_dir / "indexes" / Path(docs.filename).stem
    return build_index(precisions.get(cell.precision), docs, cell.dim, cell.rescore_multiplier,
                       calibration_vectors(config, encoded), folder)  # fmt: skip


def lexical_cell(name: str, task: str) -> Cell:
    """The grid cell of a lexical baseline: no dimensions, no precision of its own."""
    return Cell(name, task, lexical.BACKEND, lexical.DIM, lexical.PRECISION)


def evaluate_lexical_cell(the_plan: Plan, cell: Cell) -> dict:
    """Index the task's corpus with the lexical baseline, search exactly, score: the cell's record."""
    config, data = the_plan.config, the_plan.data[cell.task]
    spec = lexical.LEXICAL[cell.model]
    t0 = time.perf_counter()
    index = lexical.build(spec, list(data.corpus.values()))
    texts = list(data.queries.values())
    scores = evaluate_index(index, texts, list(data.queries), list(data.corpus), data.qrels, config.top_k,
                            data.ignore_identical_ids)  # fmt: skip
    info = {
        **_task_columns(the_plan, cell.task), "model_name": f"bm25s/{spec.name}", "model_revision": lexical.version(),
        "model_settings": spec.description,
        "bytes_per_vector": index.nbytes / len(data.corpus), "index_bytes": index.nbytes,
        "calibration": "none", "calibration_vectors": 0, "index_seconds": index.index_seconds,
        **_search_columns(scores, len(texts)), "eval_seconds": time.perf_counter() - t0,
        "n_documents": len(data.corpus), "n_queries": len(texts),
        **_search_latency(config, index, texts, len(data.corpus)),
    }  # fmt: skip
    return _record(cell, info, scores)


def _search_latency(config: SweepConfig, index, queries, n_docs: int) -> dict:
    if not config.measure:
        return {}
    k = min(config.top_k, n_docs)
    seconds = measure.search_latencies(lambda q: index.search(q, k), queries, config.search_latency_queries)
    return {"search_latency_p50_ms": measure.percentile_ms(seconds, 50),
            "search_latency_p95_ms": measure.percentile_ms(seconds, 95)}  # fmt: skip
