"""Task specs from ``tasks/retrieval/*.yaml``, and the table of loaders for their data.

One loader per data format, not one class per dataset: ``beir`` (``bench.beir``, a local BEIR
folder) and ``mteb`` (``bench.mteb_tasks``, MTEB's own registry and loaders). A loader is named
here by its module and imported only when a task of its source is loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from bench.errors import InputError, unknown
from bench.paths import default_tasks_dir
from bench.registry import Registry
from bench.types import TaskData, TaskSpec
from bench.metrics import QUALITY_METRICS
from bench.schemas import TaskSchema, task_ref, validated
from bench.yamlio import load_yaml, require_mapping

# source name -> "module:function" returning TaskData for a TaskSpec
LOADERS: Registry[str] = Registry("task source")
LOADERS.add("beir", "bench.beir:load_beir")
LOADERS.add("mteb", "bench.mteb_tasks:load_mteb")


def loader(source: str) -> Callable[[TaskSpec], TaskData]:
    """The loader function of a task source (its module is imported on first use)."""
    module, _, name = LOADERS.get(source).partition(":")
    return getattr(importlib.import_module(module), name)


def read_task_spec(path: Path) -> TaskSpec:
    """Parse and validate one task YAML file (``bench.schemas.TaskSchema``)."""
    raw = require_mapping(load_yaml(path), str(path))
    checked = validated(TaskSchema, raw, str(path))
    if checked.source not in LOADERS:
        raise InputError(f"{raw.where('source')}: {unknown('task source', checked.source, LOADERS)}")
    if checked.main_score not in QUALITY_METRICS:
        raise InputError(f"{raw.where('main_score')}: {unknown('metric', checked.main_score, QUALITY_METRICS)}")
    return TaskSpec(
        name=checked.name, source=checked.source, path=(path.parent / checked.path).resolve(),
        split=checked.split, subset=checked.subset, main_score=checked.main_score,
        ignore_identical_ids=checked.ignore_identical_ids, revision=str(checked.revision),
        license=checked.license, description=checked.description.strip(), reference=checked.reference,
        defined_in=str(path),
    )  # fmt: skip


class TaskRegistry(Registry[TaskSpec]):
    """Declared tasks; ``mteb:<Name>[/<subset>][@<split>]`` also names any MTEB retrieval task
    (default subset ``default``, split ``test``)."""

    def get(self, name: str) -> TaskSpec:
        if name.startswith("mteb:"):
            try:
                task_ref(name)  # each part a valid name
            except ValueError as exc:
                raise InputError(f"task {name!r}: {exc}") from None
            rest, _, split = name[5:].partition("@")
            task, _, subset = rest.partition("/")
            return TaskSpec(name=task, source="mteb", path=Path("."), split=split or "test",
                            subset=subset or "default", defined_in="command line")  # fmt: skip
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        return (isinstance(name, str) and name.startswith("mteb:")) or super().__contains__(name)


def task_registry(tasks_dir: Path | None = None) -> Registry[TaskSpec]:
    """Every task declared under ``tasks_dir/retrieval``."""
    registry: Registry[TaskSpec] = TaskRegistry("task")
    root = (tasks_dir or default_tasks_dir()) / "retrieval"
    for path in sorted(root.glob("*.yaml")):
        spec = read_task_spec(path)
        registry.add(spec.name, spec)
    return registry


def load_task(spec: TaskSpec) -> TaskData:
    """Load a task's data with the loader its spec names."""
    return loader(spec.source)(spec)
