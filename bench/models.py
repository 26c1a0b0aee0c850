"""Model specs from ``tasks/models.yaml``."""

from __future__ import annotations

from pathlib import Path

from bench.errors import InputError
from bench.registry import Registry
from bench.paths import default_tasks_dir
from bench.types import ModelSpec
from bench.names import check_name
from bench.schemas import ModelSchema, validated
from bench.weights import UNPINNED, check_remote_code
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
        key=key, name=m.name, revision=m.revision, dim=m.dim, max_length=m.max_length or 0, similarity=m.similarity,
        weights_package=m.weights_package, prompts=_roles(m.prompts), n_parameters=m.n_parameters,
        license=m.license, trust_remote_code=m.trust_remote_code, role_field=m.role_field,
        role_values=_roles(m.role_values), path=m.path, strip_modules=tuple(m.strip_modules),
        architecture=dict(m.architecture), mrl_dims=tuple(sorted(set(m.mrl_dims))),
        contextual=m.contextual,
    )  # fmt: skip
    if spec.revision != UNPINNED:  # a marked placeholder is listed, and refused wherever it is used
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
