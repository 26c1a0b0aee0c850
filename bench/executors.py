"""Where a sweep's work units run: in this process (the default) or on a Dask cluster.

A unit is one (model, backend, task) encode; the cheap (dimension, precision) cells fan out after
it as tasks of their own. On Dask, every worker must see the same filesystem paths for the
embedding cache and the results folder (a shared filesystem): the encode unit fills the cache,
each cell task reads the vectors back from it and writes its cell file into the run folder, and
the client gathers the cell records and writes the run's tables exactly as an in-process run
does. Units needing a GPU (CUDA backends) ask for the worker resource ``GPU=1``. A task on a lost
worker is retried elsewhere (``retries``); what it had finished (cache chunks, cell files) is
reused, not redone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bench import results
from bench.errors import InputError
from bench.types import BackendSpec, Cell

log = logging.getLogger(__name__)
RETRIES = 3


def _encoder(the_plan, model, backend: BackendSpec, encoder_factory):
    from bench.embed import LazyEncoder
    from bench.encoders import EncoderOptions

    options = EncoderOptions(the_plan.config.batch_size, the_plan.config.cache_dir)
    return LazyEncoder(lambda: encoder_factory(model, backend, options))


def encode_unit(the_plan, model_key: str, backend: BackendSpec, task_name: str, encoder_factory) -> dict:
    """Fill the cache with this unit's vectors and measure its costs; returns the cost columns."""
    from bench import runner
    from bench.cache import EmbeddingCache

    model, data = the_plan.models[model_key], the_plan.data[task_name]
    cache = EmbeddingCache(the_plan.config.cache_dir)
    lazy = _encoder(the_plan, model, backend, encoder_factory)
    _, _, encode_info = runner._encode_task(data, model, backend, cache, lazy)
    return {**encode_info, **runner._encoder_costs(the_plan, data, lazy, cache, model, backend)}


def cell_task(the_plan, cell: Cell, backend: BackendSpec, costs: dict, run_dir: Path) -> dict:
    """Evaluate one cell from the cached vectors (never encoding) and write its file."""
    from bench import runner
    from bench.cache import EmbeddingCache
    from bench.embed import LazyEncoder, embed
    from bench.types import Role

    path = run_dir / "cells" / f"{cell.key}.json"
    if path.is_file():
        return results.read_json(path)
    model, data = the_plan.models[cell.model], the_plan.data[cell.task]
    cache = EmbeddingCache(the_plan.config.cache_dir)

    def missing():
        raise InputError(f"cell {cell.key}: vectors missing from the shared cache {the_plan.config.cache_dir}")

    docs, _ = embed(data.corpus, Role.DOCUMENT, model, backend, cache, LazyEncoder(missing))
    queries, _ = embed(data.queries, Role.QUERY, model, backend, cache, LazyEncoder(missing))
    record = runner._evaluate_cell(the_plan, cell, model, docs, queries, costs)
    results.write_json(path, record)
    return record


def run_on_dask(the_plan, run_dir: Path, encoder_factory, scheduler: str) -> list[dict]:
    """Submit every unit and its cells to the cluster at ``scheduler``; gather the cell records."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--executor dask needs the package distributed (pip install 'dask[distributed]')") from None
    from bench import runner

    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    config, futures = the_plan.config, []
    with client:
        plan_future = client.scatter(the_plan, broadcast=True)
        for model in the_plan.models.values():
            for backend in config.backends:
                resources = {"GPU": 1} if backend.device == "cuda" else None
                for task in config.tasks:
                    costs = client.submit(encode_unit, plan_future, model.key, backend, task, encoder_factory,
                                          resources=resources, retries=RETRIES, pure=False)  # fmt: skip
                    for dim, precision in runner.grid(config, model):
                        cell = Cell(model.key, task, backend.id, dim, precision)
                        futures.append(client.submit(cell_task, plan_future, cell, backend, costs, run_dir,
                                                     retries=RETRIES, pure=False))  # fmt: skip
        return client.gather(futures)
