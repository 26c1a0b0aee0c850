"""Where a sweep's units run: in this process (the default) or on a Dask cluster.

Both executors run the same public units (``bench.units``): an encode unit per (model, backend,
task), its cost measurement, and a cell unit per (dimension, precision). On Dask, every worker
must see the same filesystem paths for the embedding cache and the results folder (a shared
filesystem): the encode unit fills the cache, each cell task reads the vectors back from it and
writes its cell file into the run folder, and the client gathers the cell records and writes the
run's tables exactly as an in-process run does. Units needing a GPU (CUDA backends) ask for the
worker resource ``GPU=1``. A task on a lost worker is retried elsewhere (``retries``); what it
had finished (cache chunks, cell files) is reused, not redone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bench import measure, progress, units
from bench.cache import EmbeddingCache
from bench.embed import LazyEncoder
from bench.encoders import EncoderFactory, EncoderOptions
from bench.errors import InputError
from bench.planning import Plan, grid, vectors_digest
from bench.types import BackendSpec, Cell, ModelSpec

log = logging.getLogger(__name__)
RETRIES = 3


def _lazy_encoder(the_plan: Plan, model: ModelSpec, backend: BackendSpec, encoder_factory: EncoderFactory) -> LazyEncoder:
    options = EncoderOptions(the_plan.config.batch_size, the_plan.config.cache_dir, the_plan.config.seed)

    def load():
        with progress.stage(f"load {model.key} on {backend.id}"):
            return encoder_factory(model, backend, options)

    return LazyEncoder(load, verify=lambda: _check_unchanged(the_plan, model, backend))


def _check_unchanged(the_plan: Plan, model: ModelSpec, backend: BackendSpec) -> None:
    """Vectors are stored under the identity the plan took of the weights (and everything else they
    depend on); weights rewritten between planning and loading (a training job saving into the
    folder) would be stored under their predecessor's. Checked once loaded, before anything is
    encoded (unchanged files are not read again: their digest is cached by their file status)."""
    for context in the_plan.config.contexts:
        planned = the_plan.vector_digests.get((model.key, backend.id, context))
        if planned is not None and vectors_digest(model, backend, context, the_plan.config.cache_dir) != planned:
            raise InputError(f"model {model.key} on {backend.id}: its weights or settings changed after this run was "
                             "planned; nothing was encoded with them: run again")  # fmt: skip


# --------------------------------------------------------------------------- in process


def run_local(the_plan: Plan, run_dir: Path, encoder_factory: EncoderFactory) -> list[dict]:
    """Every unit in this process: per (model, backend) one loaded model, freed before the next."""
    cache, records = EmbeddingCache(the_plan.config.cache_dir), []
    for model in the_plan.models.values():
        for backend in the_plan.config.backends:
            lazy = _lazy_encoder(the_plan, model, backend, encoder_factory)
            measure.reset_peak_rss()  # this backend's peak memory starts here
            measure.cuda_peak_reset()
            try:
                for task in the_plan.tasks:
                    records += _local_task(the_plan, model, backend, task, cache, lazy, run_dir)
            finally:
                lazy.close()
            del lazy  # free the model before the next backend loads
    for task in the_plan.tasks:
        for name in the_plan.config.lexical:
            records.append(lexical_task(the_plan, units.lexical_cell(name, task), run_dir))
    return records


def _local_task(the_plan: Plan, model, backend, task, cache, lazy, run_dir: Path) -> list[dict]:
    out = []
    for context in the_plan.config.contexts:
        out += _local_unit(the_plan, (model, backend, task, context), cache, lazy, run_dir)
    return out


def _local_unit(the_plan: Plan, unit: tuple, cache, lazy, run_dir: Path) -> list[dict]:
    """One (model, backend, task, context): encode (or read back) once, then every cell of the grid
    (finished by an interrupted run of this id, kept in the cell cache by an earlier run, or evaluated).
    Every cell carries the same cost columns: this run's one measurement (or read-back) of the unit."""
    model, backend, task, context = unit
    encoded = units.encode_unit(the_plan, model, backend, task, cache, lazy, context)
    cells = [Cell(model.key, task, backend.id, d, p, m, context) for d, p, m in grid(the_plan.config, model, backend)]
    finished = {c: units.read_cell(the_plan, run_dir, c) for c in cells}
    reused = {c: units.cached_cell(the_plan, c) for c in cells if finished[c] is None}
    suffix = f", {context}" if context != "independent" else ""
    with progress.stage(f"measure what encoding costs for {model.key} on {backend.id}{suffix}"):
        costs = units.unit_costs(the_plan, encoded, task, lazy, cache, model, backend, context)
    out = []
    with progress.counting(f"evaluate {model.key} on {task} ({backend.id}{suffix})", len(cells), "cell") as bar:
        for cell in cells:
            out.append(_unit_cell(the_plan, cell, (finished[cell], reused.get(cell)), model, encoded, costs, run_dir))
            bar.update(1)
    return out


def _unit_cell(the_plan: Plan, cell: Cell, found: tuple, model, encoded, costs: dict, run_dir: Path) -> dict:
    """A cell's record with the unit's cost columns: read back (its file rewritten only if they
    changed), reused from the cell cache, or evaluated; written into the run folder."""
    finished, reused = found
    if finished is not None:
        return units.finished_with_costs(the_plan, run_dir, cell, finished, costs)
    data = None
    if reused is not None:
        record = units.with_costs(reused, costs)
    else:
        record = units.evaluate_cell(the_plan, cell, model, encoded, costs)
        data = units.cell_bytes(the_plan, cell, record)
        units.keep_cell(the_plan, cell, record, data)
    units.write_cell(the_plan, run_dir, cell, record, data)
    return record


# --------------------------------------------------------------------------- Dask


def encode_task(the_plan: Plan, model_key: str, backend: BackendSpec, task: str, encoder_factory,
                context: str = "independent") -> dict:  # fmt: skip
    """Dask task: fill the cache with this unit's vectors and measure its costs; the cost columns."""
    model, cache = the_plan.models[model_key], EmbeddingCache(the_plan.config.cache_dir)
    lazy = _lazy_encoder(the_plan, model, backend, encoder_factory)
    measure.reset_peak_rss()  # this unit's peak memory starts here, not at the worker's start
    measure.cuda_peak_reset()
    try:
        encoded = units.encode_unit(the_plan, model, backend, task, cache, lazy, context)
        return units.unit_costs(the_plan, encoded, task, lazy, cache, model, backend, context)
    finally:
        lazy.close()


def cell_task(the_plan: Plan, cell: Cell, backend: BackendSpec, costs: dict, run_dir: Path) -> dict:
    """Dask task: evaluate one cell from the cached vectors (never encoding) and write its file."""
    finished = units.read_cell(the_plan, run_dir, cell)
    if finished is not None:
        return units.finished_with_costs(the_plan, run_dir, cell, finished, costs)
    record = units.cached_cell(the_plan, cell)
    if record is not None:
        record = units.with_costs(record, costs)
    else:
        model = the_plan.models[cell.model]
        cache = EmbeddingCache(the_plan.config.cache_dir)
        encoded = units.cached_vectors(the_plan, model, backend, cell.task, cache, cell.context)
        record = units.evaluate_cell(the_plan, cell, model, encoded, costs)
        units.keep_cell(the_plan, cell, record)
    units.write_cell(the_plan, run_dir, cell, record)
    return record


def lexical_task(the_plan: Plan, cell: Cell, run_dir: Path) -> dict:
    """A lexical baseline's cell (in process, or as a Dask task): read back or evaluate and write."""
    record = units.read_cell(the_plan, run_dir, cell)
    if record is None:
        record = units.cached_cell(the_plan, cell)
        if record is None:
            record = units.evaluate_lexical_cell(the_plan, cell)
            units.keep_cell(the_plan, cell, record)
        units.write_cell(the_plan, run_dir, cell, record)
    return record


def run_on_dask(the_plan: Plan, run_dir: Path, encoder_factory: EncoderFactory) -> list[dict]:
    """Submit every unit and its cells to the cluster at the configured scheduler; gather the records."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--executor dask needs the package distributed (pip install 'dask[distributed]')") from None
    scheduler = the_plan.config.scheduler
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: an address it cannot parse
        raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    config, futures = the_plan.config, []
    with client:
        plan_future = client.scatter(the_plan, broadcast=True)
        for model in the_plan.models.values():
            for backend in config.backends:
                resources = {"GPU": 1} if backend.device == "cuda" else None
                for task in the_plan.tasks:
                    for context in config.contexts:
                        costs = client.submit(encode_task, plan_future, model.key, backend, task, encoder_factory,
                                              context, resources=resources, retries=RETRIES, pure=False)  # fmt: skip
                        futures += [client.submit(cell_task, plan_future, Cell(model.key, task, backend.id, *point,
                                                  context), backend, costs, run_dir, retries=RETRIES, pure=False)
                                    for point in grid(config, model, backend)]  # fmt: skip
        for task in the_plan.tasks:
            for name in config.lexical:
                futures.append(client.submit(lexical_task, plan_future, units.lexical_cell(name, task), run_dir,
                                             retries=RETRIES, pure=False))  # fmt: skip
        return client.gather(futures)


EXECUTORS = {"local": run_local, "dask": run_on_dask}
