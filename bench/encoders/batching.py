"""Token-length-sorted batching shared by the local backends.

Texts are tokenized once; batches are formed from texts of similar token length (longest first)
so padding is minimal, and results are put back in input order.
"""

from __future__ import annotations

from typing import Iterator, Sequence

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
