"""Sweep configurations: YAML files (``tasks/sweeps/*.yaml``), with ``bench run`` flags laid over
them, validated against one schema (``bench.schemas.SweepSchema``) into a ``SweepConfig``."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from bench import contexts, lexical, precisions
from bench.encoders import check_context, output_kind, output_width, parse_backend
from bench.environment import emulated_dtype_warning
from bench.errors import InputError
from bench.models import model_registry
from bench.paths import default_tasks_dir
from bench.schemas import SweepSchema, validated
from bench.weights import check_remote_code
from bench.tasks import task_registry
from bench.types import CalibrationSpec, SweepConfig
from bench.yamlio import LineDict, load_yaml, require_mapping

log = logging.getLogger(__name__)

# Keys whose value is a list; a single value is accepted as a list of one.
LIST_KEYS = ("models", "tasks", "backends", "dims", "precisions", "rescore_multipliers", "lexical", "context")
SWEEP_KEYS = tuple(SweepSchema.model_fields)
EXECUTORS = ("local", "dask")


def default_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bench"


def default_config_path() -> Path:
    return default_tasks_dir() / "sweeps" / "default.yaml"


def parse_precision(value: Any, where: str) -> str:
    """A registered precision name (``bench.precisions``)."""
    return precisions.parse(value, where)


def parse_calibration(value: Any, where: str) -> CalibrationSpec:
    """``corpus``, ``sample:N`` / ``{sample: N}``, or ``file:PATH`` / ``{file: PATH}``."""
    if isinstance(value, str) and ":" in value:
        kind, _, arg = value.partition(":")
        value = {kind: arg}
    if value == "corpus":
        return CalibrationSpec()
    if isinstance(value, dict) and len(value) == 1 and "sample" in value:
        size = value["sample"]
        size = int(size) if isinstance(size, str) and size.isascii() and size.isdigit() else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise InputError(f"{where}: calibration sample must be an integer of at least 2, got {size!r}")
        return CalibrationSpec("sample", size=size)
    if isinstance(value, dict) and len(value) == 1 and "file" in value and isinstance(value["file"], str):
        return CalibrationSpec("file", path=Path(os.path.expanduser(value["file"])))
    raise InputError(f"{where}: calibration must be corpus, sample:N or file:PATH, got {value!r}")


def parse_multipliers(values: list, where: str) -> tuple[int, ...]:
    for m in values:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise InputError(f"{where}: rescore multipliers must be integers of at least 1, got {m!r}")
    if len(set(values)) != len(values):
        raise InputError(f"{where}: rescore_multipliers has duplicates: {values}")
    return tuple(values)


def _multipliers(checked: SweepSchema, where: dict) -> tuple[int, ...]:
    """``rescore_multipliers: [1, 2, 4]``; the older scalar ``rescore_multiplier: 4`` means [4]."""
    if checked.rescore_multipliers is not None and checked.rescore_multiplier is not None:
        raise InputError(f"{where['rescore_multiplier']}: give rescore_multipliers (a list) or the older "
                         "rescore_multiplier, not both")  # fmt: skip
    if checked.rescore_multiplier is not None:
        return (checked.rescore_multiplier,)
    return tuple(checked.rescore_multipliers or [4])


def _lexical(names: list[str], where: str) -> tuple[str, ...]:
    """The lexical baselines; ``none`` alone means none (with others it contradicts them)."""
    if "none" in names and len(names) > 1:
        raise InputError(f"{where}: lexical 'none' cannot be combined with other baselines, got {names}")
    return tuple(lexical.parse(n, where) for n in names if n != "none")


def _as_lists(raw: Mapping[str, Any]) -> LineDict:
    out = LineDict({k: ([v] if k in LIST_KEYS and not isinstance(v, list) else v) for k, v in raw.items()})
    out.source = getattr(raw, "source", "<config>")
    out.line = getattr(raw, "line", 0)
    out.key_lines = dict(getattr(raw, "key_lines", {}))
    return out


def config_from_mapping(raw: LineDict, flags: Mapping[str, str] | None = None) -> SweepConfig:
    """Validate a parsed sweep mapping (types, ranges, names) into a ``SweepConfig``. ``flags``
    maps the keys a command-line flag set to that flag, so errors name the flag."""
    raw, flags = _as_lists(raw), dict(flags or {})
    checked = validated(SweepSchema, raw, raw.source, flags)
    where = {k: flags.get(k) or raw.where(k) for k in (*LIST_KEYS, "rescore_multiplier", "calibration")}
    if checked.executor == "dask" and not checked.scheduler:
        raise InputError(f"{flags.get('executor') or raw.where('executor')}: executor dask needs a scheduler "
                         "address (--scheduler tcp://HOST:8786)")  # fmt: skip
    return SweepConfig(
        name=checked.name, models=tuple(checked.models), tasks=tuple(checked.tasks),
        backends=tuple(parse_backend(b, where["backends"]) for b in checked.backends),
        dims=tuple(checked.dims),
        precisions=tuple(parse_precision(p, where["precisions"]) for p in checked.precisions),
        batch_size=checked.batch_size, top_k=checked.top_k, rescore_multipliers=_multipliers(checked, where),
        calibration=parse_calibration(checked.calibration, where["calibration"]),
        lexical=_lexical(checked.lexical, where["lexical"]),
        contexts=tuple(contexts.parse(c, where["context"]) for c in checked.context),
        output_dir=Path(os.path.expanduser(checked.output_dir)),
        cache_dir=Path(os.path.expanduser(checked.cache_dir)) if checked.cache_dir else default_cache_dir(),
        seed=checked.seed, limit=checked.limit, measure=checked.measure,
        measure_documents=checked.measure_documents, measure_repeats=checked.measure_repeats,
        latency_queries=checked.latency_queries, search_latency_queries=checked.search_latency_queries,
        bootstrap_resamples=checked.bootstrap_resamples, executor=checked.executor, scheduler=checked.scheduler,
    )  # fmt: skip


def load_config(path: Path | None, overrides: Mapping[str, tuple[str, Any]] | None = None) -> SweepConfig:
    """Read a sweep YAML (the bundled default when ``path`` is None) and lay ``overrides``
    (key -> (flag, raw value)) over it; the whole is validated once."""
    path = Path(path) if path else default_config_path()
    raw = require_mapping(load_yaml(path), str(path))
    flags = {}
    for key, (flag, value) in (overrides or {}).items():
        if value is not None:
            raw[key], flags[key] = value, flag
            for replaced in SUPERSEDES.get(key, ()):  # a flag replaces the file's other spelling
                raw.pop(replaced, None)
    return config_from_mapping(raw, flags)


# A flag for one spelling of a setting replaces the file's value under the other spelling.
SUPERSEDES = {"rescore_multiplier": ("rescore_multipliers",), "rescore_multipliers": ("rescore_multiplier",)}


def validate(config: SweepConfig, tasks_dir: Path | None = None) -> None:
    """Check names against the registries and dimensions against each model's width."""
    models, tasks = model_registry(tasks_dir), task_registry(tasks_dir)
    for name in config.tasks:
        tasks.get(name)
    for backend in config.backends:
        for precision in config.precisions:
            precisions.check_input(precision, output_kind(backend), backend.id)
        warning = emulated_dtype_warning(backend.dtype, f"backend {backend.id}") if backend.device == "cpu" else None
        if warning:
            log.warning(warning)
    for name in config.models:
        spec = models.get(name)
        if any(b.kind == "torch" for b in config.backends):  # code from the model repository runs only pinned
            check_remote_code(spec, f"model {name}")
        for backend in config.backends:
            width = output_width(spec, backend)
            for dim in config.dims:
                if not 1 <= dim <= width:
                    served = f" as backend {backend.id} serves it (dimensions: {width})" if width != spec.dim else ""
                    raise InputError(f"dimension {dim} is outside 1..{width} for model {name}{served}")
        untrained = [d for d in config.dims if spec.mrl_dims and d not in spec.mrl_dims]
        if untrained:
            log.warning("model %s was trained for dimensions %s; %s are plain truncations", name,
                        list(spec.mrl_dims), untrained)  # fmt: skip
    _check_contexts(config, models)
    if config.executor == "dask" and not config.scheduler:
        raise InputError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    ids = [b.id for b in config.backends]
    if len(set(ids)) != len(ids):  # two servers of one name would share cells and vectors' digests
        raise InputError(f"backends has duplicates: {sorted({i for i in ids if ids.count(i) > 1})} (give each a "
                         "name of its own)")  # fmt: skip
    if len(set(config.lexical)) != len(config.lexical):
        raise InputError(f"lexical has duplicates: {list(config.lexical)}")
    if len(set(config.dims)) != len(config.dims):
        raise InputError(f"dims has duplicates: {list(config.dims)}")
    if len(set(config.precisions)) != len(config.precisions):
        raise InputError(f"precisions has duplicates: {list(config.precisions)}")
    if config.calibration.kind == "file" and not Path(config.calibration.path).is_file():
        raise InputError(f"{config.calibration.path}: calibration file not found")


def _check_contexts(config: SweepConfig, models) -> None:
    """Every (model, backend) runs every context asked for (else one line naming why not)."""
    if len(set(config.contexts)) != len(config.contexts):
        raise InputError(f"context has duplicates: {list(config.contexts)}")
    for name in config.models:
        for backend in config.backends:
            for context in config.contexts:
                check_context(models.get(name), backend, context, f"context {context}")


def with_overrides(config: SweepConfig, **changes: Any) -> SweepConfig:
    """A changed copy of a validated config (for code and tests; the CLI goes through
    ``load_config`` so its flags are validated with the file)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
