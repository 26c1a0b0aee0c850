"""A sweep's plan: its validated specs and loaded task data, the cell grid, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench import contexts, precisions
from bench.calibration import describe, pinned_texts
from bench.config import validate
from bench.encoders import output_width, vector_identity
from bench.errors import InputError
from bench.evaluate import SCORING_VERSION
from bench.models import model_registry
from bench.taskdata import subset
from bench.tasks import load_task, task_registry
from bench.types import BackendSpec, ModelSpec, Role, SweepConfig, TaskData, TaskSpec


@dataclass(frozen=True)
class Plan:
    """Everything a sweep needs, validated before anything is written, with the identity of
    every input: a digest of each task's data and of each (model, backend)'s vectors."""

    config: SweepConfig
    models: dict[str, ModelSpec]
    tasks: dict[str, TaskSpec]  # by task key: one (split, subset) each, in sweep order
    data: dict[str, TaskData]
    task_digests: dict[str, str] = field(default_factory=dict)
    # (model key, backend id, context) -> digest of the vectors' identities (documents and queries)
    vector_digests: dict[tuple[str, str, str], str] = field(default_factory=dict)
    calibration_texts: dict[str, str] | None = None  # with ``calibration: file:...``

    def inputs_fingerprint(self) -> str:
        """The content of every input and the scoring code's version, in one digest."""
        vectors = {"|".join(k[:2] if k[2] == "independent" else k): d for k, d in self.vector_digests.items()}
        blob = {"tasks": self.task_digests, "vectors": vectors, "scoring": SCORING_VERSION}
        return digest(blob)


def plan(config: SweepConfig, tasks_dir: Path | None = None) -> Plan:
    """Validate names and dimensions and load every task's data (raising ``InputError`` early)."""
    validate(config, tasks_dir)
    model_reg = model_registry(tasks_dir)
    tasks = expand_tasks(config.tasks, tasks_dir)
    _check_top_k(config, tasks)
    data = {key: load_task(spec) for key, spec in tasks.items()}
    if config.limit:
        data = {name: subset(d, config.limit) for name, d in data.items()}
    texts = None
    if config.calibration.kind == "file":
        texts, pinned = pinned_texts(config.calibration)
        config = replace(config, calibration=pinned)
    _check_calibration(config, data)
    _check_chunked(config, tasks)
    models = {m: model_reg.get(m) for m in config.models}
    vectors = {(m.key, b.id, c): vectors_digest(m, b, c, config.cache_dir)
               for m in models.values() for b in config.backends for c in config.contexts}  # fmt: skip
    task_digests = {name: task_digest(tasks[name], d) for name, d in data.items()}
    return Plan(config, models, tasks, data, task_digests, vectors, texts)


def _check_top_k(config: SweepConfig, tasks: dict[str, TaskSpec]) -> None:
    """A main score at k needs the top k documents: from fewer it would read as a plausible,
    wrong number. (The other metrics beyond ``top_k`` are computed over the ``top_k`` retrieved,
    as mteb computes them with the same ``top_k``.)"""
    for key, spec in tasks.items():
        depth = int(spec.main_score.rsplit("_", 1)[1]) if spec.main_score else 0
        if config.top_k < depth:
            raise InputError(f"top_k {config.top_k} is below {depth}, the depth of task {key}'s main score "
                             f"{spec.main_score}; use a top_k of at least {depth}")  # fmt: skip


def _check_calibration(config: SweepConfig, data: dict[str, TaskData]) -> None:
    if config.calibration.kind != "sample":
        return
    for name, task in data.items():
        if config.calibration.size > len(task.corpus):
            raise InputError(f"calibration sample of {config.calibration.size} vectors is larger than "
                             f"task {name}'s corpus ({len(task.corpus)} documents)")  # fmt: skip


def vectors_digest(model: ModelSpec, backend: BackendSpec, context: str, cache_dir: Path) -> str:
    """The identity of a unit's vectors: its documents' (in ``context``) and its queries' (always
    embedded alone). Independent units keep the digest they had before contexts existed."""
    queries = vector_identity(model, backend, Role.QUERY, cache_dir)
    return digest([queries, vector_identity(model, backend, Role.DOCUMENT, cache_dir, context)])


def _check_chunked(config: SweepConfig, tasks: dict[str, TaskSpec]) -> None:
    """Contexts that embed a chunk with its document need tasks whose documents are chunk lists."""
    for context in config.contexts:
        if not contexts.get(context).needs_documents:
            continue
        for key, spec in tasks.items():
            if not spec.chunked:
                raise InputError(f"context {context} embeds chunks within their documents, but task {key} is not "
                                 "chunked (its documents are single texts); run it with context independent")  # fmt: skip


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


def digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:24]


def task_digest(spec: TaskSpec, data: TaskData) -> str:
    """A digest of what a task scores: every document, query and judgement, and the rules that
    apply to them (split, subset, main score, the identical-id rule). A chunked task adds which
    chunks make up each document, in order, and its chunker (name, version and budget), so a
    changed chunker never reuses a cell even where the chunk texts happened to stay the same."""
    h = hashlib.sha256()
    for part in (data.corpus, data.queries):
        for key in sorted(part):
            h.update(f"{key}\0{part[key]}\1".encode("utf-8"))
        h.update(b"\2")
    for qid in sorted(data.qrels):
        h.update(json.dumps([qid, sorted(data.qrels[qid].items())]).encode("utf-8"))
    rules = [spec.name, spec.split, spec.subset, spec.main_score, spec.query_filter, spec.revision,
             data.ignore_identical_ids]  # fmt: skip
    if spec.chunked or data.documents is not None:
        rules.append({"chunker": spec.chunker, "dataset": spec.dataset,
                      "documents": {d: list(c) for d, c in sorted((data.documents or {}).items())}})  # fmt: skip
    h.update(json.dumps(rules).encode("utf-8"))
    return h.hexdigest()[:24]


def grid(config: SweepConfig, model: ModelSpec, backend: BackendSpec) -> list[tuple[int, str, int]]:
    """The (dim, precision, rescore multiplier) cells of a model on a backend: one per multiplier
    for a rescoring precision, multiplier 0 otherwise. The float32 cell at the backend's full
    width (the model's, or a server's ``dimensions``) is always in, as the reference."""
    cells = [(d, p, m) for d in config.dims for p in config.precisions for m in _multipliers(config, p)]
    reference = (output_width(model, backend), "float32", 0)
    return cells if reference in cells else [reference, *cells]


def _multipliers(config: SweepConfig, precision: str) -> tuple[int, ...]:
    return config.rescore_multipliers if precisions.get(precision).rescored else (0,)


def config_dict(config: SweepConfig) -> dict:
    """The resolved configuration as plain JSON values."""
    raw = asdict(config)
    raw["backends"] = [b.id for b in config.backends]
    raw["precisions"] = list(config.precisions)
    raw["calibration"] = describe(config.calibration)
    if list(raw["contexts"]) == ["independent"]:  # the default: configurations from before contexts keep their fingerprint
        del raw["contexts"]
    raw["output_dir"], raw["cache_dir"] = str(config.output_dir), str(config.cache_dir)
    return raw


def config_fingerprint(config: SweepConfig) -> str:
    blob = json.dumps(config_dict(config), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
