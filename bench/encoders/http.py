"""The ``http`` backend: embedding servers and APIs over HTTP.

Protocols:

- ``openai``: ``POST /v1/embeddings`` with ``input``, ``model``, optional ``dimensions`` and
  ``encoding_format`` (``float``, or ``base64`` little-endian float32).
- ``tei``: Hugging Face Text Embeddings Inference ``POST /embed`` with ``inputs``, ``normalize``
  (false unless configured: pplx-embed-v1's int8 needs the raw vector) and ``truncate``.
- ``perplexity``: the Perplexity embeddings API, OpenAI-shaped, whose default output is
  base64-encoded int8 (``base64_int8``) or packed binary (``base64_binary``) vectors.
- ``perplexity-context``: Perplexity's contextualized embeddings API (``POST
  /v1/contextualizedembeddings``, pplx-embed-context-v1): ``input`` is a list of documents, each
  the list of its chunks in order; the answer holds per document (``index``) one embedding per
  chunk (``index``). Requests are batched within the API's limits (``max_documents`` 512,
  ``max_chunks`` 16,000, ``max_document_tokens`` 32,000 per document, ``max_request_tokens``
  120,000 per request), tokens estimated as UTF-8 bytes / ``bytes_per_token`` (1 by default: an
  upper bound for byte-level tokenizers); a document over the per-document limit is refused in one
  line before anything is sent. A single text (a query, or a chunk embedded ``independent``) is
  sent as a document of one chunk.

Requests run ``concurrency`` at a time (the harness stores each finished batch in the cache as it
arrives) on one asyncio event loop in a background thread. ``timeout`` is a total deadline per
attempt (connecting, sending and reading the whole body), so a server that trickles bytes cannot
hold a run; a body above ``max_response_bytes`` is refused as it streams in, never read whole.
``close()`` cancels every request in flight at once (the harness calls it on Ctrl-C or a
failure). Timeouts, connection errors and HTTP 408, 425, 429, 500, 502, 503 and 504 are retried
with exponential backoff and jitter, honouring ``Retry-After``; anything else fails at once with
the endpoint and the status.
The API key is read from the environment variable named by ``api_key_env``, registered with
``bench.redact`` and only ever put in the Authorization header: never in results, logs or
messages, whatever a server echoes back.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
from typing import Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import numpy as np

from bench.encoders import EncoderOptions, prompted
from bench.errors import EncoderError, InputError
from bench.redact import redact, register_secret
from bench.types import BackendSpec, ModelSpec, Role

log = logging.getLogger(__name__)

PROTOCOLS = ("openai", "tei", "perplexity", "perplexity-context")
DEFAULT_FORMAT = {"openai": "float", "tei": "float", "perplexity": "base64_int8", "perplexity-context": "base64_int8"}
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


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _numbers(item: list) -> np.ndarray:
    """A JSON list of numbers as float32: a string ("0.12"), a bool, null or a list inside is
    refused (NumPy would convert the first two), and so is a finite value beyond float32's range
    (an integer past float64's raises OverflowError). NaN and infinity pass, for the check that
    names them."""
    if not all(type(v) is float or type(v) is int for v in item):
        odd = next(v for v in item if not (type(v) is float or type(v) is int))
        raise ValueError(f"embedding holds {type(odd).__name__} {str(odd)[:20]!r}, not a number")
    values = np.asarray(item, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size and float(np.abs(finite).max()) > _FLOAT32_MAX:
        raise ValueError("embedding holds a value beyond float32's range")
    return values.astype(np.float32)


def decode_vector(item: object, fmt: str, dim: int) -> np.ndarray:
    """One embedding from a response, whatever its encoding."""
    if isinstance(item, list):
        return _numbers(item)
    if not isinstance(item, str):
        raise ValueError(f"embedding of type {type(item).__name__}")
    raw = base64.b64decode(item, validate=True)
    if fmt in ("base64", "float"):
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if fmt == "base64_int8":
        return np.frombuffer(raw, dtype=np.int8).astype(np.float32)
    if fmt in ("base64_binary", "base64_ubinary"):  # packed sign bits, 1 for x >= 0 -> +1, else -1
        if len(raw) != (dim + 7) // 8:  # unpackbits would pad a short one (with garbage where empty)
            raise ValueError(f"{len(raw)} bytes of packed bits for width {dim}, expected {(dim + 7) // 8}")
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=dim)
        return bits.astype(np.float32) * 2.0 - 1.0
    raise ValueError(f"unknown encoding_format {fmt!r}")


def fingerprint(model: ModelSpec, backend: BackendSpec, role: Role, cache_root) -> dict:
    """What decides a server's vectors: the normalized endpoint (scheme, host, port, path; never
    credentials), its query parameters (credentials aside), the backend's name, protocol, remote model, encoding format, dimensions,
    normalization, and how the role and prompt travel. Two servers never share vectors."""
    from bench.schemas import HttpBackendSchema, http_output

    o = HttpBackendSchema.model_validate({"kind": "http", "name": backend.name, **dict(backend.options)})
    query = query_key(o.url)
    return {
        **({"query_sha256": query} if query else {}),  # a URL without a query keeps the key it always had
        "endpoint": endpoint_key(o.url), "name": backend.name, "protocol": o.protocol,
        "remote_model": o.model or model.name, "encoding_format": o.encoding_format or DEFAULT_FORMAT[o.protocol],
        "dimensions": o.dimensions, "normalize": o.normalize, "prompt": model.prompts.get(role.value, ""),
        "output": http_output(o),
        "role_field": [model.role_field, model.role_values.get(role.value, role.value)] if model.role_field else None,
    }  # fmt: skip


def context_fingerprint(model: ModelSpec, backend: BackendSpec, context: str) -> dict:
    """Context native on a server: the contextualized endpoint embeds each document's chunk list
    (its endpoint, model and format are in ``fingerprint`` already)."""
    return {"native": "the server embeds each document's list of chunks, one vector per chunk", "version": 1}


def estimated_tokens(text: str, bytes_per_token: float) -> int:
    """Tokens a text may take: its UTF-8 bytes / ``bytes_per_token``, rounded up (with 1, an upper
    bound for byte-level BPE tokenizers such as Qwen3's: every token is at least one byte)."""
    return math.ceil(len(text.encode("utf-8")) / bytes_per_token)


# Query parameter names that carry credentials (Azure's ``code``, ``hf_token``, ``X-Amz-Credential``...).
CREDENTIAL_NAMES = re.compile(r"(?i)key|token|secret|sig|auth|code|pass|credential|session")


def query_key(url: str) -> str:
    """A SHA-256 of the URL's query parameters, sorted (empty without any): the server sees them,
    so they may change its vectors. Credential-looking parameters are left out (they decide who
    may ask, not what comes back), and only a digest is kept, so no value is ever written out."""
    pairs = [(k, v) for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)
             if not CREDENTIAL_NAMES.search(k) and redact(f"{k}={v}") == f"{k}={v}"]  # fmt: skip
    return hashlib.sha256(json.dumps(sorted(pairs)).encode()).hexdigest() if pairs else ""


def endpoint_key(url: str) -> str:
    """scheme://host:port/path with the default port made explicit and the host lower-cased."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}{parts.path or '/'}"


class HttpEncoder:
    """Embeds texts by calling an embedding server."""

    n_parameters = 0

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        from bench.schemas import HttpBackendSchema, http_output

        o = HttpBackendSchema.model_validate({"kind": "http", "name": backend.name, **dict(backend.options)})
        self.protocol, self.url, self.label = o.protocol, o.url, endpoint_label(o.url)
        self.output = http_output(o)
        self.remote_model = o.model or model.name
        self.format = o.encoding_format or DEFAULT_FORMAT[self.protocol]
        self.dimensions, self.dim = o.dimensions, int(o.dimensions or model.dim)
        self.normalize = o.normalize
        self.chunk_size = o.batch_size or options.batch_size  # one request per chunk
        self.parallel_requests = o.concurrency
        self.max_retries, self.backoff, self.max_backoff = o.max_retries, o.backoff, o.max_backoff
        self.timeout, self.max_bytes = o.timeout, o.max_response_bytes
        self.role_field, self.role_values = model.role_field, dict(model.role_values)
        self.prompts = dict(model.prompts)
        self.limits = (o.max_documents, o.max_chunks, o.max_document_tokens, o.max_request_tokens, o.bytes_per_token)
        self.headers = {"Content-Type": "application/json", **api_key_header(o.api_key_env, backend.id)}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"bench-http-{backend.name}", daemon=True)
        self._thread.start()
        self._client = self._call(self._open_client()).result()
        self._inflight: set[concurrent.futures.Future] = set()
        self._lock = threading.Lock()
        self._closed = False

    async def _open_client(self):
        import httpx

        limits = httpx.Limits(max_connections=self.parallel_requests)
        return httpx.AsyncClient(headers=self.headers, timeout=self.timeout, limits=limits, follow_redirects=False)

    def _call(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def count_tokens(self, texts: Sequence[str]) -> int | None:
        return None  # the server tokenizes; unknown here

    def _body(self, texts: Sequence[str], role: Role) -> dict:
        texts = prompted(texts, self.prompts, role)
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
        """One request (with its retries) for ``texts``; blocks the calling thread only."""
        if self.protocol == "perplexity-context":  # a text is a document of one chunk
            documents = [[t] for t in prompted(texts, self.prompts, role)]
            return np.concatenate([v for b in self.document_batches(documents)
                                   for v in self.encode_documents([documents[i] for i in b], "native")])  # fmt: skip
        return self._request(self._body(texts, role), lambda content: self._parse(content, len(texts)))

    def document_batches(self, documents: Sequence[Sequence[str]]) -> list[list[int]]:
        """Requests within the API's limits; a document over the per-document limit is refused."""
        from bench.encoders.batching import DocumentLimits, document_batches

        max_docs, max_chunks, doc_tokens, request_tokens, per_token = self.limits
        sizes = [[estimated_tokens(c, per_token) for c in doc] for doc in documents]
        for doc, size in zip(documents, sizes):
            if sum(size) > doc_tokens:
                raise InputError(f"{self.label}: a document of {len(doc)} chunks may hold {sum(size):,} tokens "
                                 f"(UTF-8 bytes / {per_token:g}), over the API's {doc_tokens:,} per document; no "
                                 "request can hold it (cut it into smaller documents, or raise bytes_per_token)")  # fmt: skip
        return document_batches(sizes, DocumentLimits(min(max_docs, self.chunk_size), max_chunks, request_tokens))

    def encode_documents(self, documents: Sequence[Sequence[str]], context: str) -> list[np.ndarray]:
        """One request (with its retries) for ``documents``, each a list of chunks (``native``)."""
        body = {"input": [list(d) for d in documents], "model": self.remote_model, "encoding_format": self.format}
        if self.dimensions:
            body["dimensions"] = int(self.dimensions)
        counts = [len(d) for d in documents]
        return self._request(body, lambda content: self._parse_documents(content, counts))

    def _request(self, body: dict, parse):
        future = self._call(self._encode(body, parse))
        with self._lock:
            self._inflight.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise EncoderError(f"{self.label}: request cancelled") from None
        finally:
            with self._lock:
                self._inflight.discard(future)

    def close(self) -> None:
        """Cancel every request in flight at once and release the connections."""
        with self._lock:
            pending, already = list(self._inflight), self._closed
            self._closed = True
        if already:
            return
        for future in pending:
            future.cancel()
        if self._loop.is_running():
            try:
                self._call(self._client.aclose()).result(timeout=5)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _encode(self, body: dict, parse):
        for attempt in range(self.max_retries + 1):
            try:
                return parse(await self._post(body))
            except TransientError as exc:
                if attempt == self.max_retries:
                    raise EncoderError(f"{self.label}: gave up after {attempt + 1} attempts ({exc.reason})") from None
                delay = self._delay(attempt, exc.retry_after)
                log.warning("%s: %s; retrying in %.1fs (%d/%d)", self.label, exc.reason, delay,
                            attempt + 1, self.max_retries)  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # exponential backoff with jitter

    async def _post(self, body: dict) -> bytes:
        """One attempt under a total deadline: the whole exchange, not each read, is bounded."""
        import httpx

        try:
            async with asyncio.timeout(self.timeout):
                async with self._client.stream("POST", self.url, json=body) as response:
                    await self._check_status(response)
                    return await self._read_bounded(response)
        except TimeoutError:
            raise TransientError(f"no complete answer within the {self.timeout:g}s timeout") from None
        except httpx.TimeoutException:
            raise TransientError("timed out") from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}") from None

    async def _check_status(self, response) -> None:
        status = response.status_code
        if status in TRANSIENT_STATUS:
            raise TransientError(f"HTTP {status}", retry_after_seconds(response.headers.get("retry-after")))
        if 300 <= status < 400:
            raise EncoderError(f"{self.label}: HTTP {status}: the server redirects; set url to the final endpoint")
        if status >= 400:
            raise EncoderError(f"{self.label}: HTTP {status}: {await _error_detail(response)}")

    async def _read_bounded(self, response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise EncoderError(f"{self.label}: response of {int(declared):,} bytes exceeds max_response_bytes "
                               f"({self.max_bytes:,})")  # fmt: skip
        chunks, total = [], 0
        async with contextlib.aclosing(response.aiter_bytes()) as body:  # closed when we stop early
            async for chunk in body:
                total += len(chunk)
                if total > self.max_bytes:
                    raise EncoderError(f"{self.label}: response exceeds max_response_bytes ({self.max_bytes:,}); "
                                       "stopped reading")  # fmt: skip
                chunks.append(chunk)
        return b"".join(chunks)

    def _parse(self, content: bytes, n_texts: int) -> np.ndarray:
        try:
            items = self._items(json.loads(content), n_texts)
            vectors = [decode_vector(item, self.format, self.dim) for item in items]
        except (ValueError, KeyError, TypeError, RecursionError, OverflowError) as exc:
            raise EncoderError(f"{self.label}: malformed response ({type(exc).__name__}: {redact(str(exc))[:100]})") from None
        if len(vectors) != n_texts:
            raise EncoderError(f"{self.label}: returned {len(vectors)} vectors for {n_texts} texts")
        widths = {len(v) for v in vectors}
        if widths != {self.dim}:
            raise EncoderError(f"{self.label}: returned vectors of width {sorted(widths)}, expected {self.dim}")
        return self._checked(np.stack(vectors).astype(np.float32))

    def _parse_documents(self, content: bytes, counts: list[int]) -> list[np.ndarray]:
        """Per document, its chunks' vectors in order; the answer's document and chunk ``index``
        values must be exactly the request's positions."""
        try:
            documents = _in_order(json.loads(content)["data"], len(counts), "document")
            out = [self._chunk_vectors(doc, n) for doc, n in zip(documents, counts)]
        except (ValueError, KeyError, TypeError, RecursionError, OverflowError) as exc:
            raise EncoderError(f"{self.label}: malformed response ({type(exc).__name__}: {redact(str(exc))[:100]})") from None
        return out

    def _chunk_vectors(self, document: dict, n_chunks: int) -> np.ndarray:
        items = _in_order(document["data"], n_chunks, "chunk")
        vectors = [decode_vector(item["embedding"], self.format, self.dim) for item in items]
        widths = {len(v) for v in vectors}
        if widths != {self.dim}:
            raise EncoderError(f"{self.label}: returned vectors of width {sorted(widths)}, expected {self.dim}")
        return self._checked(np.stack(vectors).astype(np.float32))

    def _checked(self, vectors: np.ndarray) -> np.ndarray:
        """Each answer as it arrives: finite, and what the backend's ``output`` says it is (int8
        codes, or +-1 signs), so a bad answer stops the run at once, naming the endpoint."""
        checks = [("NaN or Inf", ~np.isfinite(vectors))]
        if self.output == "int8":
            odd = (vectors != np.rint(vectors)) | (vectors < -128) | (vectors > 127)
            checks.append(("values that are not int8 codes (integers in [-128, 127]), as output 'int8' says", odd))
        elif self.output == "binary":
            checks.append(("values that are not +-1 signs, as output 'binary' says", (vectors != 1) & (vectors != -1)))
        for what, odd in checks:
            rows = np.flatnonzero(odd.any(axis=1))
            if rows.size:
                raise EncoderError(f"{self.label}: returned {what} (first in row {int(rows[0])} of the answer)")
        return vectors

    def _items(self, payload: object, n_texts: int) -> list:
        """The embeddings in request order. OpenAI-style answers carry an ``index`` per item, which
        must be exactly a permutation of the request's positions: a duplicate or a gap would give
        a text another text's vector."""
        if self.protocol == "tei":
            if not isinstance(payload, list):
                raise TypeError("expected a JSON list of vectors")
            return payload
        data = payload["data"]
        indexes = [d["index"] for d in data]
        if any(isinstance(i, bool) or not isinstance(i, int) for i in indexes):
            raise ValueError("an 'index' is not an integer")
        if len(data) == n_texts and sorted(indexes) != list(range(n_texts)):
            raise ValueError(f"the 'index' values are not a permutation of 0..{n_texts - 1}")
        return [d["embedding"] for d in sorted(data, key=lambda d: d["index"])]


def _in_order(items: list, n: int, what: str) -> list:
    """``items`` sorted by their ``index``, which must be exactly 0..n-1 (a gap or a duplicate would
    give one chunk another chunk's vector)."""
    indexes = [item["index"] for item in items]
    if any(isinstance(i, bool) or not isinstance(i, int) for i in indexes):
        raise ValueError(f"a {what} 'index' is not an integer")
    if sorted(indexes) != list(range(n)):
        raise ValueError(f"{len(items)} {what}s with 'index' values that are not a permutation of 0..{n - 1}")
    return sorted(items, key=lambda item: item["index"])


def api_key_header(variable: str | None, backend_id: str) -> dict[str, str]:
    """The Authorization header for the key in ``$variable`` (none without one). The key is
    registered for redaction before anything else can print it."""
    if not variable:
        return {}
    key = os.environ.get(variable)
    if not key:
        raise InputError(f"backend {backend_id}: environment variable {variable} is not set")
    register_secret(key)
    if not key.isascii() or not key.isprintable() or key.strip() != key:
        raise InputError(f"backend {backend_id}: the key in {variable} holds characters an HTTP header cannot carry "
                         "(non-ASCII, control characters or surrounding spaces)")  # fmt: skip
    return {"Authorization": f"Bearer {key}"}


async def _error_detail(response, limit: int = 4096) -> str:
    """The start of an error body (at most ``limit`` bytes read), redacted: servers echo keys."""
    data = b""
    async with contextlib.aclosing(response.aiter_bytes()) as body:  # closed when we stop early
        async for chunk in body:
            data += chunk
            if len(data) >= limit:
                break
    text = " ".join(data[:limit].decode("utf-8", "replace").split())
    return redact(text, cut=len(data) >= limit)[:200]
