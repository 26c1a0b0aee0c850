"""Task specs from ``tasks/retrieval/*.yaml``, and the table of loaders for their data.

One loader per data format, not one class per dataset: ``beir`` (``bench.beir``, a local BEIR
folder), ``mteb`` (``bench.mteb_tasks``, MTEB's own registry and loaders), and the chunked task
kind: ``chunked`` (a local folder of documents as chunk lists) and ``squad-chunked`` (SQuAD-format
answers, chunked at load time) in ``bench.chunked``, ``conteb`` (ConTEB on the hub, ``bench.conteb``). A loader is named
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

from bench.chunked import labelling_identity
from bench.errors import InputError, unknown
from bench.metrics import METRICS
from bench.paths import default_tasks_dir
from bench.registry import Registry
from bench.taskdata import QUERY_FILTERS
from bench.types import TaskData, TaskSpec
from bench.schemas import TaskSchema, task_ref, validated
from bench.yamlio import load_yaml, require_mapping

# source name -> "module:function" returning TaskData for a TaskSpec
LOADERS: Registry[str] = Registry("task source")
LOADERS.add("beir", "bench.beir:load_beir")
LOADERS.add("mteb", "bench.mteb_tasks:load_mteb")
LOADERS.add("chunked", "bench.chunked:load_chunked")
LOADERS.add("squad-chunked", "bench.chunked:load_squad_chunked")
LOADERS.add("conteb", "bench.conteb:load_conteb")
# Sources whose documents are ordered lists of chunks, judged on chunks (``type: chunked-retrieval``).
CHUNKED_SOURCES = ("chunked", "squad-chunked", "conteb")
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
    """Parse and validate one task YAML file (``bench.schemas.TaskSchema``)."""
    raw = require_mapping(load_yaml(path), str(path))
    checked = validated(TaskSchema, raw, str(path))
    source = checked.source
    if source not in LOADERS:
        raise InputError(f"{raw.where('source')}: {unknown('task source', source, LOADERS)}")
    main_score = checked.main_score if checked.main_score is not None else _from_source(source, "ndcg_at_10")
    if main_score and main_score not in METRICS:
        raise InputError(f"{raw.where('main_score')}: {unknown('main score', main_score, METRICS)}")
    if checked.query_filter not in QUERY_FILTERS:
        raise InputError(f"{raw.where('query_filter')}: {unknown('query filter', checked.query_filter, QUERY_FILTERS)}")
    chunked = _check_kind(raw, checked)
    return TaskSpec(
        name=checked.name, source=source, path=(path.parent / checked.path).resolve(),
        split=checked.split if checked.split is not None else _from_source(source, "test"),
        subset=checked.subset if checked.subset is not None else _from_source(source, "default"),
        main_score=main_score, revision=str(checked.revision),
        # an mteb task keeps None where it is not declared: expanding it takes MTEB's rule, checking a declared one
        ignore_identical_ids=checked.ignore_identical_ids if source == "mteb" else bool(checked.ignore_identical_ids),
        languages=tuple(checked.languages), query_filter=checked.query_filter, license=checked.license,
        description=checked.description.strip(), reference=checked.reference, defined_in=str(path),
        chunked=chunked, chunk_words=checked.chunk_words or 0, dataset=checked.dataset or "",
        chunker=labelling_identity(checked.chunk_words) if source == "squad-chunked" else "",
    )  # fmt: skip


# source -> the keys only it takes (each refused elsewhere), and those it requires
SOURCE_KEYS = {"squad-chunked": ("chunk_words",), "conteb": ("dataset",)}
REQUIRED_KEYS = {"squad-chunked": ("chunk_words",), "conteb": ("dataset", "revision")}


def _check_kind(raw, checked: TaskSchema) -> bool:
    """The declared ``type`` fits the source (chunked sources are ``chunked-retrieval``), and
    source-specific keys appear with their source only. True for a chunked task."""
    chunked = checked.source in CHUNKED_SOURCES
    expected = "chunked-retrieval" if chunked else "retrieval"
    if checked.type != expected:
        raise InputError(f"{raw.where('type')}: a task of source {checked.source} has type {expected}, "
                         f"not {checked.type}")  # fmt: skip
    for source, keys in SOURCE_KEYS.items():
        for key in keys:
            if key in raw and checked.source != source:
                raise InputError(f"{raw.where(key)}: key {key!r} is for tasks of source {source} only")
    for key in REQUIRED_KEYS.get(checked.source, ()):
        if key not in raw or not raw[key]:
            raise InputError(f"{raw.where()}: a task of source {checked.source} needs {key!r}")
    return chunked


def _base_name(name: str) -> str:
    """``mteb:<Task>`` of ``mteb:<Task>[/<subset>][@<split>]``; a declared name unchanged."""
    return name.partition("@")[0].partition("/")[0] if name.startswith("mteb:") else name


class TaskRegistry(Registry[TaskSpec]):
    """Declared tasks; ``mteb:<Name>[/<subset>][@<split>]`` also names any MTEB retrieval task
    (without a subset or split: every subset and evaluation split of its metadata)."""

    def get(self, name: str) -> TaskSpec:
        if name.startswith("mteb:"):
            try:
                task_ref(name)  # each part a valid name
            except ValueError as exc:
                raise InputError(f"task {name!r}: {exc}") from None
            rest, _, split = name[5:].partition("@")
            task, _, subset = rest.partition("/")
            return TaskSpec(name=task, source="mteb", path=Path("."), split=split, subset=subset, main_score="",
                            ignore_identical_ids=None, defined_in=f"task {name!r}")  # fmt: skip
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
    registry, files = TaskRegistry("task"), {}
    root = (tasks_dir or default_tasks_dir()) / "retrieval"
    for path in sorted(root.glob("*.yaml")):
        spec = read_task_spec(path)
        if spec.name in files:  # name both files: the user keeps one
            raise InputError(f"{path}: task {spec.name!r} is defined twice (also in {files[spec.name]})")
        files[spec.name] = path
        registry.add(spec.name, spec)
    return registry


def load_task(spec: TaskSpec) -> TaskData:
    """Load a task's data with the loader its spec names."""
    return loader(spec.source)(spec)
