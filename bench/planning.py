"""A sweep's plan: its validated specs and loaded task data, the cell grid, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.config import validate
from bench.errors import InputError
from bench.models import model_registry
from bench.taskdata import subset
from bench.tasks import load_task, task_registry
from bench.types import ModelSpec, Precision, SweepConfig, TaskData, TaskSpec


@dataclass(frozen=True)
class Plan:
    """Everything a sweep needs, validated before anything is written."""

    config: SweepConfig
    models: dict[str, ModelSpec]
    tasks: dict[str, TaskSpec]  # by task key: one (split, subset) each, in sweep order
    data: dict[str, TaskData]


def plan(config: SweepConfig, tasks_dir: Path | None = None) -> Plan:
    """Validate names and dimensions and load every task's data (raising ``InputError`` early)."""
    validate(config, tasks_dir)
    model_reg = model_registry(tasks_dir)
    tasks = expand_tasks(config.tasks, tasks_dir)
    data = {key: load_task(spec) for key, spec in tasks.items()}
    if config.limit:
        data = {name: subset(d, config.limit) for name, d in data.items()}
    return Plan(config, {m: model_reg.get(m) for m in config.models}, tasks, data)


def expand_tasks(names: tuple[str, ...], tasks_dir: Path | None = None) -> dict[str, TaskSpec]:
    """Every (split, subset) the sweep's task names stand for, by task key. Two keys naming the
    same (task, split, subset) are refused: MTEB's result of a task holds each pair once."""
    registry, tasks, seen = task_registry(tasks_dir), {}, {}
    for name in names:
        for key, spec in registry.expand(name).items():
            identity = (spec.name, spec.split, spec.subset)
            if identity in seen or key in tasks:
                raise InputError(f"tasks {seen.get(identity, key)!r} and {name!r} both evaluate {spec.name} "
                                 f"split {spec.split!r} subset {spec.subset!r}; keep one")  # fmt: skip
            seen[identity], tasks[key] = name, spec
    return tasks


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
