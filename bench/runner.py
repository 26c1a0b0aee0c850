"""Expand a sweep into cells and schedule them: one encode per (model, backend, task), then
every (dimension, precision) cell from the cached embeddings. Orchestration only, no math."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bench import environment, faults, measure, results, stats, store
from bench.cache import remove_stale_temporaries
from bench.cache import EmbeddingCache
from bench.config import validate
from bench.embed import EncodeStats, LazyEncoder, embed, namespace_key
from bench.encoders import Encoder, EncoderOptions, make_encoder
from bench.errors import InputError
from bench.evaluate import evaluate_index
from bench.metrics import QUALITY_METRICS
from bench.models import model_registry
from bench.search import build_index
from bench.tasks import load_task, subset, task_registry
from bench.types import BackendSpec, Cell, ModelSpec, Precision, Role, SweepConfig, TaskData, TaskSpec

log = logging.getLogger(__name__)

EncoderFactory = Callable[[ModelSpec, BackendSpec, EncoderOptions], Encoder]


@dataclass(frozen=True)
class Plan:
    """Everything a sweep needs, validated before anything is written."""

    config: SweepConfig
    models: dict[str, ModelSpec]
    tasks: dict[str, TaskSpec]
    data: dict[str, TaskData]


def plan(config: SweepConfig, tasks_dir: Path | None = None) -> Plan:
    """Validate names and dimensions and load every task's data (raising ``InputError`` early)."""
    validate(config, tasks_dir)
    model_reg, task_reg = model_registry(tasks_dir), task_registry(tasks_dir)
    tasks = {name: task_reg.get(name) for name in config.tasks}
    data = {name: load_task(spec) for name, spec in tasks.items()}
    if config.limit:
        data = {name: subset(d, config.limit) for name, d in data.items()}
    return Plan(config, {m: model_reg.get(m) for m in config.models}, tasks, data)


def grid(config: SweepConfig, model: ModelSpec) -> list[tuple[int, Precision]]:
    """The (dim, precision) cells for a model; the float32 full-width reference is always in."""
    cells = [(d, p) for d in config.dims for p in config.precisions]
    reference = (model.dim, Precision.FLOAT32)
    return cells if reference in cells else [reference, *cells]


def config_fingerprint(config: SweepConfig) -> str:
    blob = json.dumps(config_dict(config), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def config_dict(config: SweepConfig) -> dict:
    raw = asdict(config)
    raw["backends"] = [b.id for b in config.backends]
    raw["precisions"] = [p.value for p in config.precisions]
    raw["output_dir"], raw["cache_dir"] = str(config.output_dir), str(config.cache_dir)
    return raw


def open_run_dir(config: SweepConfig, run_id: str | None) -> Path:
    """Create (or, for a given ``run_id`` with the same config, reopen) the run directory."""
    fingerprint = config_fingerprint(config)
    if run_id is None:  # the random part keeps two runs started in the same second apart
        run_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{fingerprint[:6]}-{os.urandom(2).hex()}"
    run_dir = config.output_dir / run_id
    manifest_path = run_dir / results.MANIFEST
    if manifest_path.is_file():
        old = results.read_json(manifest_path)
        results.check_schema(old, manifest_path)
        if old.get("config_fingerprint") != fingerprint:
            raise InputError(f"{run_dir}: exists with a different configuration; pick another --run-id")
    try:
        (run_dir / "cells").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{run_dir}: cannot create the run directory ({exc.strerror})") from None
    if not os.access(run_dir, os.W_OK):
        raise InputError(f"{run_dir}: not writable")
    remove_stale_temporaries(run_dir)
    remove_stale_temporaries(config.cache_dir) if config.cache_dir.is_dir() else None
    return run_dir


def lock_run_dir(run_dir: Path):
    """Hold an exclusive lock on the run folder for this process's lifetime (released on exit or kill)."""
    import fcntl

    handle = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(f"{run_dir}: another bench process is running this run; wait for it or pick another --run-id") from None
    return handle


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def run(
    config: SweepConfig,
    tasks_dir: Path | None = None,
    run_id: str | None = None,
    encoder_factory: EncoderFactory = make_encoder,
) -> Path:
    """Run a whole sweep and write its results; returns the run directory."""
    the_plan = plan(config, tasks_dir)
    run_dir = open_run_dir(config, run_id)
    lock = lock_run_dir(run_dir)
    _seed(config.seed)
    started = datetime.now(timezone.utc)
    _write_manifest(the_plan, run_dir, started, finished=None)
    try:
        records = _run_cells(the_plan, run_dir, encoder_factory)
    except BaseException:
        lock.close()
        _discard_if_empty(run_dir)
        raise
    try:
        _write_results(records, run_dir, config)
        _write_manifest(the_plan, run_dir, started, finished=datetime.now(timezone.utc))
    finally:
        lock.close()
    return run_dir


def _run_cells(the_plan: Plan, run_dir: Path, encoder_factory: EncoderFactory) -> list[dict]:
    if the_plan.config.executor == "dask":
        from bench.executors import run_on_dask

        return run_on_dask(the_plan, run_dir, encoder_factory, the_plan.config.scheduler)
    config, cache, records = the_plan.config, EmbeddingCache(the_plan.config.cache_dir), []
    for model in the_plan.models.values():
        for backend in config.backends:
            options = EncoderOptions(config.batch_size, config.cache_dir)
            lazy = LazyEncoder(lambda m=model, b=backend: encoder_factory(m, b, options))
            measure.reset_peak_rss()  # this backend's peak memory starts here
            measure.cuda_peak_reset()
            for task_name in config.tasks:
                records += _run_task(the_plan, model, backend, task_name, cache, lazy, run_dir)
            del lazy  # free the model before the next backend loads
    return records


def _discard_if_empty(run_dir: Path) -> None:
    """A run that failed before finishing any cell leaves nothing behind."""
    if not any((run_dir / "cells").glob("*.json")):
        shutil.rmtree(run_dir, ignore_errors=True)


def _encode_task(data: TaskData, model, backend, cache, lazy) -> tuple[np.ndarray, np.ndarray, dict]:
    docs, doc_stats = embed(data.corpus, Role.DOCUMENT, model, backend, cache, lazy)
    queries, query_stats = embed(data.queries, Role.QUERY, model, backend, cache, lazy)
    return docs, queries, _encode_columns(doc_stats, query_stats)


def _encode_columns(docs: EncodeStats, queries: EncodeStats) -> dict:
    return {
        "n_documents": docs.n_texts,
        "n_queries": queries.n_texts,
        "encode_seconds_documents": docs.seconds,
        "encode_seconds_queries": queries.seconds,
        "encoded_texts": docs.n_encoded + queries.n_encoded,
    }


def _run_task(the_plan: Plan, model, backend, task_name, cache, lazy, run_dir) -> list[dict]:
    data = the_plan.data[task_name]
    docs, queries, encode_info = _encode_task(data, model, backend, cache, lazy)
    out, costs = [], None
    for dim, precision in tqdm(grid(the_plan.config, model), desc=f"evaluate {model.key} on {task_name}", disable=None):
        cell = Cell(model.key, task_name, backend.id, dim, precision)
        path = run_dir / "cells" / f"{cell.key}.json"
        if path.is_file():  # finished by an earlier, interrupted run with this id
            out.append(results.read_json(path))
            continue
        if costs is None:  # measured once per (model, backend, task), only if a cell needs it
            costs = {**encode_info, **_encoder_costs(the_plan, data, lazy, cache, model, backend)}
        record = _evaluate_cell(the_plan, cell, model, docs, queries, costs)
        results.write_json(path, record)
        faults.checkpoint("cell")
        out.append(record)
    return out


def _encoder_costs(the_plan: Plan, data: TaskData, lazy: LazyEncoder, cache: EmbeddingCache, model, backend) -> dict:
    """Throughput, latency and memory of this (model, backend) on a seeded sample of the task.

    Measured when the model is loaded in this run anyway, or when no earlier measurement with the
    same settings is cached; otherwise the cached figures are reused (``cost_measured_at`` says when),
    so re-running or extending a sweep never loads the model just to time it."""
    config = the_plan.config
    if not config.measure:
        return {}
    rng = np.random.default_rng(config.seed)
    texts = list(data.corpus.values())
    picks = sorted(rng.choice(len(texts), min(len(texts), config.measure_documents), replace=False))
    sample = [model.prompt(Role.DOCUMENT) + texts[i] for i in picks]
    queries = [model.prompt(Role.QUERY) + q for q in list(data.queries.values())[: config.latency_queries]]
    key = {**namespace_key(model, backend, Role.DOCUMENT), "repeats": config.measure_repeats,
           "texts": hashlib.sha256("\0".join(sample + ["\1"] + queries).encode()).hexdigest()}  # fmt: skip
    cached = cache.load_record("costs", key)
    if cached is not None and not lazy.loaded:
        return cached
    cost = measure.measure_encoder(lazy.get(), sample, queries, lazy.load_seconds or 0.0, config.measure_repeats,
                                   config.latency_queries)  # fmt: skip
    row = {**cost.as_row(), "cost_measured_at": datetime.now(timezone.utc).isoformat()}
    cache.store_record("costs", key, row)
    return row


def _evaluate_cell(the_plan: Plan, cell: Cell, model: ModelSpec, docs, queries, costs) -> dict:
    config, spec, data = the_plan.config, the_plan.tasks[cell.task], the_plan.data[cell.task]
    t0 = time.perf_counter()
    index = _build_index(cell, docs, config)
    scores = evaluate_index(index, queries, list(data.queries), list(data.corpus), data.qrels,
                            config.top_k, data.ignore_identical_ids)  # fmt: skip
    info = {
        "model_name": model.name, "model_revision": model.revision, "task_name": spec.name,
        "split": spec.split, "subset": spec.subset,
        "dataset_revision": spec.revision, "main_score_name": spec.main_score,
        "bytes_per_vector": cell.precision.bytes_per_vector(cell.dim), "index_bytes": index.nbytes,
        "search_seconds": scores.search_seconds,
        "search_queries_per_second": len(queries) / scores.search_seconds if scores.search_seconds > 0 else None,
        "eval_seconds": time.perf_counter() - t0, **_search_latency(config, index, queries, len(data.corpus)),
        **costs,
    }  # fmt: skip
    return {
        "cell": {"model": cell.model, "task": cell.task, "backend": cell.backend, "dim": cell.dim,
                 "precision": cell.precision.value},
        "info": info, "metrics": scores.means, "per_query": scores.per_query,
    }  # fmt: skip


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


ROW_KEYS = ("model", "task", "backend", "dim", "precision")


def rows_frame(records: list[dict]) -> pd.DataFrame:
    """Tidy rows: one per cell, every metric, retention against the float32 full-width cell."""
    rows = []
    for rec in records:
        row = {**rec["cell"], **rec["info"], **rec["metrics"]}
        row["main_score"] = rec["metrics"][rec["info"]["main_score_name"]]
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["retention"] = frame.main_score / _reference_scores(frame)
    frame["retention_vs_torch_float32"] = frame.main_score / _torch_reference(frame)
    front = [*ROW_KEYS, "bytes_per_vector", "main_score", "retention", "retention_vs_torch_float32", *QUALITY_METRICS]
    return frame[front + [c for c in frame.columns if c not in front]]


def _reference_scores(frame: pd.DataFrame) -> pd.Series:
    """Per row, the main score of the float32 cell at the widest dimension of its group."""
    group = ["model", "task", "backend"]
    ref = frame[frame.precision == "float32"].sort_values("dim").groupby(group).main_score.last()
    return frame.join(ref.rename("reference"), on=group)["reference"]


REFERENCE_BACKENDS = ("torch-cpu-float32", "torch-cuda-float32")


def _torch_reference(frame: pd.DataFrame) -> pd.Series:
    """Per row, the float32 full-width main score of the model on the float32 torch backend
    (what bf16 or int8 weights are measured against); NaN when that backend is not swept."""
    present = [b for b in REFERENCE_BACKENDS if b in set(frame.backend)]
    if not present:
        return pd.Series(float("nan"), index=frame.index)
    ref = frame[(frame.backend == present[0]) & (frame.precision == "float32")]
    ref = ref.sort_values("dim").groupby(["model", "task"]).main_score.last()
    return frame.join(ref.rename("reference"), on=["model", "task"])["reference"]


def per_query_frame(records: list[dict]) -> pd.DataFrame:
    frames = []
    for rec in records:
        frame = pd.DataFrame.from_dict(rec["per_query"], orient="index")
        frame.index.name = "query_id"
        frame = frame.reset_index()
        for key in reversed(ROW_KEYS):
            frame.insert(0, key, rec["cell"][key])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _write_results(records: list[dict], run_dir: Path, config: SweepConfig) -> None:
    rows, per_query = rows_frame(records), per_query_frame(records)
    n, seed = config.bootstrap_resamples, config.seed
    intervals = stats.interval_table(per_query, list(QUALITY_METRICS), n, seed)
    main = intervals.merge(rows[[*ROW_KEYS, "main_score_name"]], on=ROW_KEYS)
    main = main[main.metric == main.main_score_name][[*ROW_KEYS, "ci_low", "ci_high"]]
    rows = rows.merge(main.rename(columns={"ci_low": "main_score_ci_low", "ci_high": "main_score_ci_high"}), on=ROW_KEYS)
    rows = rows.merge(stats.reference_comparisons(per_query, rows, n, seed), on=ROW_KEYS)
    results.write_frame(run_dir / results.INTERVALS, intervals)
    results.write_frame(run_dir / results.PER_QUERY, per_query)
    results.write_csv(run_dir / "rows.csv", rows)
    results.write_frame(run_dir / results.ROWS, rows)


def _write_manifest(the_plan: Plan, run_dir: Path, started: datetime, finished: datetime | None) -> None:
    config = the_plan.config
    manifest = {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_dir.name,
        "status": "finished" if finished else "running",
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat() if finished else None,
        "config_fingerprint": config_fingerprint(config),
        "config": config_dict(config),
        "seed": config.seed,
        **environment.git_state(),
        "packages": environment.package_versions(),
        "machine": environment.machine(),
        "models": {k: asdict(m) for k, m in the_plan.models.items()},
        "tasks": {k: {**asdict(t), "path": str(t.path)} for k, t in the_plan.tasks.items()},
    }
    results.write_json(run_dir / results.MANIFEST, manifest)
