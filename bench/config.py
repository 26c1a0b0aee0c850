"""Sweep configurations: YAML files (``tasks/sweeps/*.yaml``) validated into ``SweepConfig``."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import lexical, precisions
from bench.encoders import parse_backend
from bench.errors import InputError, unknown
from bench.models import model_registry
from bench.paths import default_tasks_dir
from bench.tasks import task_registry
from bench.types import CalibrationSpec, SweepConfig
from bench.yamlio import LineDict, check_keys, load_yaml, require_mapping, typed

log = logging.getLogger(__name__)

SWEEP_KEYS = (
    "name", "models", "tasks", "backends", "dims", "precisions", "batch_size", "top_k",
    "rescore_multipliers", "rescore_multiplier", "calibration", "lexical", "output_dir", "cache_dir", "seed", "limit", "measure",
    "measure_documents", "measure_repeats", "latency_queries", "search_latency_queries",
    "bootstrap_resamples", "executor", "scheduler",
)  # fmt: skip


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
        size = int(size) if isinstance(size, str) and size.isdigit() else size
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


def _multipliers(raw: LineDict) -> tuple[int, ...]:
    """``rescore_multipliers: [1, 2, 4]``; the older scalar ``rescore_multiplier: 4`` means [4]."""
    if "rescore_multipliers" in raw and "rescore_multiplier" in raw:
        raise InputError(f"{raw.where('rescore_multiplier')}: give rescore_multipliers (a list) or the older "
                         "rescore_multiplier, not both")  # fmt: skip
    if "rescore_multiplier" in raw:
        return parse_multipliers([raw["rescore_multiplier"]], raw.where("rescore_multiplier"))
    return parse_multipliers(_list(raw, "rescore_multipliers", [4]), raw.where("rescore_multipliers"))


def _lexical(raw: LineDict) -> tuple[str, ...]:
    values = raw.get("lexical") or []
    values = values if isinstance(values, list) else [values]
    return tuple(lexical.parse(v, raw.where("lexical")) for v in values)


def _list(raw: LineDict, key: str, default: list | None = None) -> list:
    value = raw.get(key, default)
    if value is None:
        raise InputError(f"{raw.where()}: missing required key {key!r}")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InputError(f"{raw.where(key)}: {key} must not be empty")
    return items


def _positive(raw: LineDict, key: str, default: int | None) -> int | None:
    value = typed(raw, key, int, default)
    if value is not None and value < 1:
        raise InputError(f"{raw.where(key)}: {key} must be at least 1, got {value}")
    return value


def config_from_mapping(raw: LineDict) -> SweepConfig:
    """Validate a parsed sweep mapping (types, names, ranges) into a ``SweepConfig``."""
    check_keys(raw, SWEEP_KEYS, required=("models", "tasks", "dims", "precisions"))
    dims = _list(raw, "dims")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            raise InputError(f"{raw.where('dims')}: dimensions must be integers, got {d!r}")
    return SweepConfig(
        name=str(typed(raw, "name", str, "sweep")),
        models=tuple(str(m) for m in _list(raw, "models")),
        tasks=tuple(str(t) for t in _list(raw, "tasks")),
        backends=tuple(parse_backend(b, raw.where("backends")) for b in _list(raw, "backends", ["torch"])),
        dims=tuple(dims),
        precisions=tuple(parse_precision(p, raw.where("precisions")) for p in _list(raw, "precisions")),
        batch_size=_positive(raw, "batch_size", 64),
        top_k=_positive(raw, "top_k", 1000),
        rescore_multipliers=_multipliers(raw),
        calibration=parse_calibration(raw.get("calibration", "corpus"), raw.where("calibration")),
        lexical=_lexical(raw),
        output_dir=_path(raw, "output_dir", Path("results")),
        cache_dir=_path(raw, "cache_dir", default_cache_dir()),
        seed=typed(raw, "seed", int, 0),
        limit=_positive(raw, "limit", None),
        measure=typed(raw, "measure", bool, True),
        measure_documents=_positive(raw, "measure_documents", 128),
        measure_repeats=_positive(raw, "measure_repeats", 3),
        latency_queries=_positive(raw, "latency_queries", 50),
        search_latency_queries=_positive(raw, "search_latency_queries", 20),
        bootstrap_resamples=_positive(raw, "bootstrap_resamples", 1000),
        executor=_executor(raw),
        scheduler=typed(raw, "scheduler", str, ""),
    )


EXECUTORS = ("local", "dask")


def _executor(raw: LineDict) -> str:
    value = typed(raw, "executor", str, "local")
    if value not in EXECUTORS:
        raise InputError(f"{raw.where('executor')}: {unknown('executor', value, EXECUTORS)}")
    if value == "dask" and not raw.get("scheduler"):
        raise InputError(f"{raw.where('executor')}: executor dask needs a scheduler address")
    return value


def _path(raw: LineDict, key: str, default: Path) -> Path:
    """A path setting; relative paths are relative to the working directory."""
    value = typed(raw, key, str, None)
    return Path(os.path.expanduser(value)) if value is not None else default


def load_config(path: Path | None) -> SweepConfig:
    """Read a sweep YAML (the bundled default when ``path`` is None)."""
    path = Path(path) if path else default_config_path()
    return config_from_mapping(require_mapping(load_yaml(path), str(path)))


def validate(config: SweepConfig, tasks_dir: Path | None = None) -> None:
    """Check names against the registries and dimensions against each model's width."""
    models, tasks = model_registry(tasks_dir), task_registry(tasks_dir)
    for name in config.tasks:
        tasks.get(name)
    for name in config.models:
        spec = models.get(name)
        for dim in config.dims:
            if not 1 <= dim <= spec.dim:
                raise InputError(f"dimension {dim} is outside 1..{spec.dim} for model {name}")
        untrained = [d for d in config.dims if spec.mrl_dims and d not in spec.mrl_dims]
        if untrained:
            log.warning("model %s was trained for dimensions %s; %s are plain truncations", name,
                        list(spec.mrl_dims), untrained)  # fmt: skip
    if config.executor == "dask" and not config.scheduler:
        raise InputError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    if len(set(config.dims)) != len(config.dims):
        raise InputError(f"dims has duplicates: {list(config.dims)}")
    if len(set(config.precisions)) != len(config.precisions):
        raise InputError(f"precisions has duplicates: {list(config.precisions)}")
    if config.calibration.kind == "file" and not Path(config.calibration.path).is_file():
        raise InputError(f"{config.calibration.path}: calibration file not found")


def with_overrides(config: SweepConfig, **changes: Any) -> SweepConfig:
    """Apply CLI overrides that are not None."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
