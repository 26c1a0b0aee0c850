"""Encoder backends. A backend is one small file registering a factory in ``BACKENDS``.

The contract is tiny: ``encode(texts, role) -> float32 array of shape (len(texts), dim)``.
An encoder never sees a task; prompts are prepended by the harness before it is called.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from bench.errors import EncoderError, InputError, unknown
from bench.registry import Registry
from bench.types import BackendSpec, ModelSpec, Role


class Encoder(Protocol):
    """Turns texts into float32 vectors."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        """Embed ``texts`` (already prompted) for ``role``; one row per text."""
        ...


EncoderFactory = Callable[[ModelSpec, BackendSpec, int], Encoder]
BACKENDS: Registry[EncoderFactory] = Registry("backend")

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")


def parse_backend(value: str | dict, where: str = "backends") -> BackendSpec:
    """Parse ``torch``, ``torch-cuda``, ``torch-cuda-bfloat16`` or ``{kind, device, dtype}``."""
    if isinstance(value, dict):
        kind = value.get("kind", "torch")
        device, dtype = value.get("device", "cpu"), value.get("dtype", "float32")
    elif isinstance(value, str) and 1 <= len(value.split("-")) <= 3:
        parts = value.split("-") + ["cpu", "float32"][len(value.split("-")) - 1 :]
        kind, device, dtype = parts
    else:
        raise InputError(f"{where}: a backend is a name or a mapping, got {value!r}")
    if kind not in BACKENDS:
        raise InputError(f"{where}: {unknown('backend', str(kind), BACKENDS)}")
    if device not in DEVICES:
        raise InputError(f"{where}: unknown device {device!r} in backend {value!r}; use cpu or cuda")
    if dtype not in DTYPES:
        raise InputError(f"{where}: unknown dtype {dtype!r} in backend {value!r}; use {DTYPES}")
    return BackendSpec(kind=kind, device=device, dtype=dtype)


def make_encoder(model: ModelSpec, backend: BackendSpec, batch_size: int) -> Encoder:
    """Instantiate the encoder for ``model`` on ``backend`` (loads weights)."""
    return BACKENDS.get(backend.kind)(model, backend, batch_size)


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


def _register_builtin() -> None:
    from bench import testing  # noqa: F401  (registers "hashing": weightless, for tests)
    from bench.encoders import torch_st  # noqa: F401  (registers "torch")


_register_builtin()
