"""A sweep's plan: its validated specs and loaded task data, the cell grid, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import precisions
from bench.calibration import describe, read_texts
from bench.config import validate
from bench.errors import InputError
from bench.models import model_registry
from bench.taskdata import subset
from bench.tasks import load_task, task_registry
from bench.types import ModelSpec, SweepConfig, TaskData, TaskSpec


@dataclass(frozen=True)
class Plan:
    """Everything a sweep needs, validated before anything is written."""

    config: SweepConfig
    models: dict[str, ModelSpec]
    tasks: dict[str, TaskSpec]
    data: dict[str, TaskData]
    calibration_texts: dict[str, str] | None = None  # with ``calibration: file:...``


def plan(config: SweepConfig, tasks_dir: Path | None = None) -> Plan:
    """Validate names and dimensions and load every task's data (raising ``InputError`` early)."""
    validate(config, tasks_dir)
    model_reg, task_reg = model_registry(tasks_dir), task_registry(tasks_dir)
    tasks = {name: task_reg.get(name) for name in config.tasks}
    data = {name: load_task(spec) for name, spec in tasks.items()}
    if config.limit:
        data = {name: subset(d, config.limit) for name, d in data.items()}
    texts = read_texts(config.calibration.path) if config.calibration.kind == "file" else None
    _check_calibration(config, data)
    return Plan(config, {m: model_reg.get(m) for m in config.models}, tasks, data, texts)


def _check_calibration(config: SweepConfig, data: dict[str, TaskData]) -> None:
    if config.calibration.kind != "sample":
        return
    for name, task in data.items():
        if config.calibration.size > len(task.corpus):
            raise InputError(f"calibration sample of {config.calibration.size} vectors is larger than "
                             f"task {name}'s corpus ({len(task.corpus)} documents)")  # fmt: skip


def grid(config: SweepConfig, model: ModelSpec) -> list[tuple[int, str, int]]:
    """The (dim, precision, rescore multiplier) cells for a model: one per multiplier for a
    rescoring precision, multiplier 0 otherwise. The float32 full-width reference is always in."""
    cells = [(d, p, m) for d in config.dims for p in config.precisions for m in _multipliers(config, p)]
    reference = (model.dim, "float32", 0)
    return cells if reference in cells else [reference, *cells]


def _multipliers(config: SweepConfig, precision: str) -> tuple[int, ...]:
    return config.rescore_multipliers if precisions.get(precision).rescored else (0,)


def config_dict(config: SweepConfig) -> dict:
    """The resolved configuration as plain JSON values."""
    raw = asdict(config)
    raw["backends"] = [b.id for b in config.backends]
    raw["precisions"] = list(config.precisions)
    raw["calibration"] = describe(config.calibration)
    raw["output_dir"], raw["cache_dir"] = str(config.output_dir), str(config.cache_dir)
    return raw


def config_fingerprint(config: SweepConfig) -> str:
    blob = json.dumps(config_dict(config), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
