"""A sweep's plan: its validated specs and loaded task data, the cell grid, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.config import validate
from bench.models import model_registry
from bench.taskdata import subset
from bench.tasks import load_task, task_registry
from bench.types import ModelSpec, Precision, SweepConfig, TaskData, TaskSpec


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


def config_dict(config: SweepConfig) -> dict:
    """The resolved configuration as plain JSON values."""
    raw = asdict(config)
    raw["backends"] = [b.id for b in config.backends]
    raw["precisions"] = [p.value for p in config.precisions]
    raw["output_dir"], raw["cache_dir"] = str(config.output_dir), str(config.cache_dir)
    return raw


def config_fingerprint(config: SweepConfig) -> str:
    blob = json.dumps(config_dict(config), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
