"""Token-length-sorted batching shared by the local backends.

Texts are tokenized once; batches are formed from texts of similar token length (longest first)
so padding is minimal, and results are put back in input order.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np


def sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Index arrays of batches, longest texts first (stable for equal lengths)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id rows: (input_ids, attention_mask), both int64 (batch, longest)."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of token states over the attention mask: (batch, seq, dim) -> (batch, dim)."""
    weights = mask[:, :, None].astype(hidden.dtype)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def document_batches(sizes: Sequence[Sequence[int]], limits: "DocumentLimits") -> list[list[int]]:
    """Consecutive documents per call within ``limits``: at most ``documents`` documents,
    ``chunks`` chunks and ``tokens`` tokens a call (``sizes``: each document's chunk sizes). A
    document over ``document_tokens`` on its own is refused by the caller before this is asked."""
    batches, current, chunks, tokens = [], [], 0, 0
    for i, doc in enumerate(sizes):
        n, t = len(doc), sum(doc)
        if current and (len(current) + 1 > limits.documents or chunks + n > limits.chunks or tokens + t > limits.tokens):
            batches.append(current)
            current, chunks, tokens = [], 0, 0
        current.append(i)
        chunks, tokens = chunks + n, tokens + t
    return batches + ([current] if current else [])


class DocumentLimits:
    """What one call may carry: documents, chunks and tokens (all of them, across its documents)."""

    def __init__(self, documents: int, chunks: int, tokens: int) -> None:
        self.documents, self.chunks, self.tokens = documents, chunks, tokens


def by_chunks(documents: Sequence[Sequence[str]], chunk_size: int, count: Callable[[str], int] = lambda _: 0) -> list[list[int]]:
    """Local encoders: consecutive documents of about ``chunk_size`` chunks a call (a larger
    document is a call alone)."""
    sizes = [[count(c) for c in doc] for doc in documents]
    return document_batches(sizes, DocumentLimits(len(documents) or 1, chunk_size, 2**62))
