"""Task specs from ``tasks/retrieval/*.yaml``, and the table of loaders for their data.

One loader per data format, not one class per dataset: ``beir`` (``bench.beir``, a local BEIR
folder) and ``mteb`` (``bench.mteb_tasks``, MTEB's own registry and loaders). A loader is named
here by its module and imported only when a task of its source is loaded.

A declared name may stand for several (split, subset) pairs: ``mteb:<Task>`` without a subset or
split means every subset and every evaluation split MTEB declares. ``TaskRegistry.expand`` turns a
name into concrete specs, keyed by the name itself when it names one pair, else by
``<name>/<subset>@<split>``; those keys are the ``task`` of cells and rows.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from bench.errors import InputError, unknown
from bench.metrics import METRICS
from bench.paths import default_tasks_dir
from bench.registry import Registry
from bench.taskdata import QUERY_FILTERS
from bench.types import TaskData, TaskSpec
from bench.yamlio import LineDict, check_keys, load_yaml, require_mapping, typed

TASK_KEYS = (
    "name", "type", "source", "path", "split", "subset", "main_score", "ignore_identical_ids",
    "revision", "license", "description", "reference", "languages", "query_filter",
)  # fmt: skip

# source name -> "module:function" returning TaskData for a TaskSpec
LOADERS: Registry[str] = Registry("task source")
LOADERS.add("beir", "bench.beir:load_beir")
LOADERS.add("mteb", "bench.mteb_tasks:load_mteb")
# source name -> "module:function" turning a declaration into its concrete (split, subset) specs;
# a source without one is concrete as declared.
EXPANDERS: Registry[str] = Registry("task source")
EXPANDERS.add("mteb", "bench.mteb_tasks:expand_mteb")


def _function(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def loader(source: str) -> Callable[[TaskSpec], TaskData]:
    """The loader function of a task source (its module is imported on first use)."""
    return _function(LOADERS.get(source))


def expand_spec(spec: TaskSpec) -> list[TaskSpec]:
    """The concrete (split, subset) specs a declaration stands for."""
    return _function(EXPANDERS.get(spec.source))(spec) if spec.source in EXPANDERS else [spec]


def _from_source(source: str, value: str) -> str:
    """A source with metadata of its own (MTEB) fills what a declaration leaves out."""
    return "" if source in EXPANDERS else value


def read_task_spec(path: Path) -> TaskSpec:
    """Parse and validate one task YAML file."""
    raw = require_mapping(load_yaml(path), str(path))
    check_keys(raw, TASK_KEYS, required=("name", "source"))
    if typed(raw, "type", str, "retrieval") != "retrieval":
        raise InputError(f"{raw.where('type')}: only type 'retrieval' is supported")
    source = typed(raw, "source", str)
    if source not in LOADERS:
        raise InputError(f"{raw.where('source')}: {unknown('task source', source, LOADERS)}")
    return TaskSpec(
        name=typed(raw, "name", str),
        source=source,
        path=(path.parent / typed(raw, "path", str, ".")).resolve(),
        split=typed(raw, "split", str, _from_source(source, "test")),
        subset=typed(raw, "subset", str, _from_source(source, "default")),
        main_score=_main_score(raw, source),
        ignore_identical_ids=typed(raw, "ignore_identical_ids", bool, False),
        revision=str(typed(raw, "revision", (str, int), "")),
        languages=_languages(raw),
        query_filter=_query_filter(raw),
        license=typed(raw, "license", str, ""),
        description=typed(raw, "description", str, "").strip(),
        reference=typed(raw, "reference", str, ""),
        defined_in=str(path),
    )


def _main_score(raw: LineDict, source: str) -> str:
    value = typed(raw, "main_score", str, _from_source(source, "ndcg_at_10"))
    if value and value not in METRICS:
        raise InputError(f"{raw.where('main_score')}: {unknown('main score', value, METRICS)}")
    return value


def _languages(raw: LineDict) -> tuple[str, ...]:
    value = typed(raw, "languages", list, [])
    if not all(isinstance(v, str) for v in value):
        raise InputError(f"{raw.where('languages')}: languages must be language-script codes such as eng-Latn")
    return tuple(value)


def _query_filter(raw: LineDict) -> str:
    value = typed(raw, "query_filter", str, "mteb")
    if value not in QUERY_FILTERS:
        raise InputError(f"{raw.where('query_filter')}: {unknown('query filter', value, QUERY_FILTERS)}")
    return value


def _base_name(name: str) -> str:
    """``mteb:<Task>`` of ``mteb:<Task>[/<subset>][@<split>]``; a declared name unchanged."""
    return name.partition("@")[0].partition("/")[0] if name.startswith("mteb:") else name


class TaskRegistry(Registry[TaskSpec]):
    """Declared tasks; ``mteb:<Name>[/<subset>][@<split>]`` also names any MTEB retrieval task
    (without a subset or split: every subset and evaluation split of its metadata)."""

    def get(self, name: str) -> TaskSpec:
        if name.startswith("mteb:") and len(name) > 5:
            rest, _, split = name[5:].partition("@")
            task, _, subset = rest.partition("/")
            return TaskSpec(name=task, source="mteb", path=Path("."), split=split, subset=subset, main_score="",
                            defined_in=f"task {name!r}")  # fmt: skip
        return super().get(name)

    def expand(self, name: str) -> dict[str, TaskSpec]:
        """The concrete specs ``name`` stands for, by task key (see the module docstring)."""
        specs = expand_spec(self.get(name))
        if len(specs) == 1:
            return {name: specs[0]}
        return {f"{_base_name(name)}/{s.subset}@{s.split}": s for s in specs}

    def __contains__(self, name: object) -> bool:
        return (isinstance(name, str) and name.startswith("mteb:")) or super().__contains__(name)


def task_registry(tasks_dir: Path | None = None) -> TaskRegistry:
    """Every task declared under ``tasks_dir/retrieval``."""
    registry = TaskRegistry("task")
    root = (tasks_dir or default_tasks_dir()) / "retrieval"
    for path in sorted(root.glob("*.yaml")):
        spec = read_task_spec(path)
        registry.add(spec.name, spec)
    return registry


def load_task(spec: TaskSpec) -> TaskData:
    """Load a task's data with the loader its spec names."""
    return loader(spec.source)(spec)
