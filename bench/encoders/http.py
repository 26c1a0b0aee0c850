"""The ``http`` backend: embedding servers and APIs over HTTP.

Protocols:

- ``openai``: ``POST /v1/embeddings`` with ``input``, ``model``, optional ``dimensions`` and
  ``encoding_format`` (``float``, or ``base64`` little-endian float32).
- ``tei``: Hugging Face Text Embeddings Inference ``POST /embed`` with ``inputs``, ``normalize``
  (false unless configured: pplx-embed-v1's int8 needs the raw vector) and ``truncate``.
- ``perplexity``: the Perplexity embeddings API, OpenAI-shaped, whose default output is
  base64-encoded int8 (``base64_int8``) or packed binary (``base64_binary``) vectors.

Requests run ``concurrency`` at a time (the harness stores each finished batch in the cache as it
arrives). Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and
jitter, honouring ``Retry-After``; anything else fails at once with the endpoint and the status.
The API key is read from the environment variable named by ``api_key_env`` and is only ever put
in the Authorization header: never in results, logs or messages.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import os
import random
import time
from typing import Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from bench.encoders import EncoderOptions
from bench.errors import EncoderError, InputError
from bench.types import BackendSpec, ModelSpec, Role

log = logging.getLogger(__name__)

PROTOCOLS = ("openai", "tei", "perplexity")
DEFAULT_FORMAT = {"openai": "float", "tei": "float", "perplexity": "base64_int8"}
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


def endpoint_label(url: str) -> str:
    """The URL without credentials, query or fragment: safe to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class TransientError(Exception):
    """A failure worth retrying; carries the delay the server asked for, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: seconds, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def decode_vector(item: object, fmt: str, dim: int) -> np.ndarray:
    """One embedding from a response, whatever its encoding."""
    if isinstance(item, list):
        return np.asarray(item, dtype=np.float32)
    if not isinstance(item, str):
        raise ValueError(f"embedding of type {type(item).__name__}")
    raw = base64.b64decode(item, validate=True)
    if fmt in ("base64", "float"):
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if fmt == "base64_int8":
        return np.frombuffer(raw, dtype=np.int8).astype(np.float32)
    if fmt in ("base64_binary", "base64_ubinary"):  # packed sign bits, 1 for x >= 0 -> +1, else -1
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=dim)
        return bits.astype(np.float32) * 2.0 - 1.0
    raise ValueError(f"unknown encoding_format {fmt!r}")


class HttpEncoder:
    """Embeds texts by calling an embedding server."""

    n_parameters = 0

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        import httpx

        opt = backend.option
        self.protocol = str(opt("protocol", "openai"))
        if self.protocol not in PROTOCOLS:
            raise InputError(f"backend {backend.id}: unknown protocol {self.protocol!r}; use {', '.join(PROTOCOLS)}")
        self.url, self.label = str(opt("url")), endpoint_label(str(opt("url")))
        self.remote_model = str(opt("model", model.name))
        self.format = str(opt("encoding_format", DEFAULT_FORMAT[self.protocol]))
        self.dimensions = opt("dimensions")
        self.dim = int(self.dimensions or model.dim)
        self.normalize = bool(opt("normalize", False))
        self.chunk_size = int(opt("batch_size", options.batch_size))  # one request per chunk
        self.parallel_requests = int(opt("concurrency", 4))
        self.max_retries, self.backoff = int(opt("max_retries", 5)), float(opt("backoff", 0.5))
        self.max_backoff = float(opt("max_backoff", 30.0))
        self.role_field, self.role_values = model.role_field, dict(model.role_values)
        headers = {"Content-Type": "application/json"}
        key_env = opt("api_key_env")
        if key_env:
            key = os.environ.get(str(key_env))
            if not key:
                raise InputError(f"backend {backend.id}: environment variable {key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(
            headers=headers, timeout=float(opt("timeout", 60.0)),
            limits=httpx.Limits(max_connections=self.parallel_requests),
        )  # fmt: skip

    def count_tokens(self, texts: Sequence[str]) -> int:
        return 0  # the server tokenizes; unknown here

    def _body(self, texts: Sequence[str], role: Role) -> dict:
        if self.protocol == "tei":
            body: dict = {"inputs": list(texts), "normalize": self.normalize, "truncate": True}
        else:
            body = {"input": list(texts), "model": self.remote_model, "encoding_format": self.format}
            if self.dimensions:
                body["dimensions"] = int(self.dimensions)
        if self.role_field:
            body[self.role_field] = self.role_values.get(role.value, role.value)
        return body

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        body = self._body(texts, role)
        for attempt in range(self.max_retries + 1):
            try:
                return self._parse(self._post(body), len(texts))
            except TransientError as exc:
                if attempt == self.max_retries:
                    raise EncoderError(
                        f"{self.label}: gave up after {attempt + 1} attempts ({exc.reason})"
                    ) from None
                delay = self._delay(attempt, exc.retry_after)
                log.warning("%s: %s; retrying in %.1fs (%d/%d)", self.label, exc.reason, delay,
                            attempt + 1, self.max_retries)  # fmt: skip
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # exponential backoff with jitter

    def _post(self, body: dict) -> bytes:
        import httpx

        try:
            response = self.client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise TransientError("timed out") from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}") from None
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")))
        if response.status_code >= 400:
            detail = response.text[:200].replace("\n", " ")
            raise EncoderError(f"{self.label}: HTTP {response.status_code}: {detail}")
        return response.content

    def _parse(self, content: bytes, n_texts: int) -> np.ndarray:
        try:
            payload = json.loads(content)
            items = payload if self.protocol == "tei" else [d["embedding"] for d in sorted(payload["data"], key=lambda d: d["index"])]
            vectors = [decode_vector(item, self.format, self.dim) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise EncoderError(f"{self.label}: malformed response ({type(exc).__name__}: {str(exc)[:100]})") from None
        if len(vectors) != n_texts:
            raise EncoderError(f"{self.label}: returned {len(vectors)} vectors for {n_texts} texts")
        widths = {len(v) for v in vectors}
        if widths != {self.dim}:
            raise EncoderError(f"{self.label}: returned vectors of width {sorted(widths)}, expected {self.dim}")
        return np.stack(vectors).astype(np.float32)

