"""The ``context`` axis of a sweep: how a chunked task's chunks are embedded.

Each context is one registered strategy (compare ``bench.precisions``):

- ``independent``: every chunk alone, as any text (the default; the only one for tasks whose
  documents are single texts). Its vectors are the backend's plain vectors of the chunk's text,
  keyed by that text alone, so they are shared with any other use of the same text.
- ``late``: late chunking. The whole document runs through the transformer once (beyond the
  model's token limit, in overlapping windows) and each chunk's vector is the mean of its own
  tokens' output states. For local mean-pooling models (the ``torch`` backend); the rule and its
  version are the backend's (``bench.encoders.torch_st``).
- ``native``: the model embeds a document given as its list of chunks and returns one vector per
  chunk (pplx-embed-context-v1 through sentence-transformers, or Perplexity's contextualized
  embeddings API through the ``http`` backend's ``perplexity-context`` protocol).

A chunk vector of ``late`` or ``native`` depends on its whole document, so the cache finds it by
the digest of the document's chunks in order and the chunk's position (``chunk_digest``), under a
namespace whose key adds the context and the backend's rule for it. Which backends run which
contexts is declared with each backend (``bench.encoders.BackendKind.contexts``); everything else
is refused before anything runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

from bench.errors import InputError, unknown
from bench.registry import Registry

DEFAULT = "independent"


@dataclass(frozen=True)
class Context:
    """One way of embedding chunks."""

    name: str
    description: str
    needs_documents: bool  # embeds a chunk with the rest of its document (a chunked task only)
    needs_contextual_model: bool = False  # the model itself takes a document as a list of chunks


CONTEXTS: Registry[Context] = Registry("context")
CONTEXTS.add("independent", Context("independent", "each chunk embedded alone", False))
CONTEXTS.add("late", Context("late", "late chunking: the document through the transformer once, each chunk the "
                                     "mean of its own tokens' states", True))  # fmt: skip
CONTEXTS.add("native", Context("native", "the model embeds the document's list of chunks, one vector per chunk",
                               True, needs_contextual_model=True))  # fmt: skip


def get(name: str) -> Context:
    return CONTEXTS.get(name)


def names() -> list[str]:
    return list(CONTEXTS)


def parse(value: object, where: str) -> str:
    """A registered context name."""
    if not isinstance(value, str) or value not in CONTEXTS:
        raise InputError(f"{where}: {unknown('context', str(value), CONTEXTS)}")
    return value


def chunk_digest(chunks: Sequence[str], position: int) -> bytes:
    """The cache address of a chunk embedded in context: SHA-256 over its document's chunks, in
    order, and its position among them (32 raw bytes)."""
    blob = json.dumps([position, list(chunks)], ensure_ascii=False)
    return hashlib.sha256(b"chunk-in-document\0" + blob.encode("utf-8")).digest()
