"""Run a sweep: plan it, open its run folder, hand its units to an executor, write its results.
Orchestration only; the units are in ``bench.units``, the math further down."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.encoders import EncoderFactory, make_encoder
from bench.executors import EXECUTORS
from bench.frames import write_results
from bench.manifest import write_manifest
from bench.planning import Plan, plan
from bench.results import MANIFEST, read_json
from bench.rundir import discard_if_empty, open_run_dir
from bench.types import SweepConfig

log = logging.getLogger(__name__)
__all__ = ["Plan", "plan", "run"]


def _seed(seed: int) -> None:
    """Seed Python's and NumPy's generators. torch is seeded by the backend that loads it
    (``EncoderOptions.seed``): importing it here would cost seconds on runs that load no model."""
    random.seed(seed)
    np.random.seed(seed)


def _previous_manifest(run) -> dict:
    """The manifest of the run folder being resumed (empty for a new folder)."""
    path = run.path / MANIFEST
    return {} if run.made_here or not path.is_file() else read_json(path)


def _note_changed_inputs(the_plan: Plan, run, previous: dict) -> None:
    """On resume: say so when the inputs changed since the run began (its cells are recomputed)."""
    old = previous.get("inputs_fingerprint")
    if old and old != the_plan.inputs_fingerprint():
        log.warning("%s: the task data, model or backend changed since this run began; cells computed from the "
                    "old inputs are computed again", run.path.name)  # fmt: skip


def run(
    config: SweepConfig,
    tasks_dir: Path | None = None,
    run_id: str | None = None,
    encoder_factory: EncoderFactory = make_encoder,
) -> Path:
    """Run a whole sweep and write its results; returns the run directory."""
    the_plan = plan(config, tasks_dir)
    run = open_run_dir(config, run_id)
    previous = _previous_manifest(run)
    _note_changed_inputs(the_plan, run, previous)
    try:
        _seed(config.seed)
        started = datetime.now(timezone.utc)
        if previous.get("status") != "finished":  # a finished run stays so (and listed) until this one replaces its results
            write_manifest(the_plan, run.path, started, finished=None)
        run.record(run.path / MANIFEST) if run.made_here else None
        records = EXECUTORS[config.executor](the_plan, run.path, encoder_factory)
    except BaseException:
        run.release()
        discard_if_empty(run)
        raise
    try:
        write_results(records, run.path, config)
        write_manifest(the_plan, run.path, started, finished=datetime.now(timezone.utc))
    finally:
        run.release()
    return run.path
