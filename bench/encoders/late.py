"""Late chunking: the rule, in plain Python and NumPy (the torch backend runs the transformer).

Version 1, for a model with a token limit ``L`` and a mean-pooling chain:

1. **Tokens.** Each chunk is tokenized alone, without special tokens (exactly as the chunk's own
   tokens would be, embedded independently); a document's tokens are its chunks' tokens
   concatenated, in order.
2. **Windows.** A window holds ``C = L - specials - prompt`` content tokens, where ``specials`` are
   the tokens the tokenizer wraps every input in (``[CLS]``/``[SEP]``, ``<s>``/``</s>``) and
   ``prompt`` the tokens of the model's document prompt (e.g. e5's ``passage: ``), which lead every
   window and are never pooled. A document of at most ``C`` tokens is one window. A longer one is
   cut into windows that overlap by ``O = C // 4`` tokens: the first covers tokens ``[0, C)``; each
   next one covers the ``O`` tokens before the first token it owns, then owns the next ``C - O``
   tokens (fewer at the end). Every token is owned by exactly one window, and its output state
   is taken from that window, so a token beyond the first window sees at least ``O`` tokens of
   left context.
3. **Pooling.** A chunk's vector is the mean of its own tokens' output states (special and prompt
   tokens excluded), followed by the chain's ``Normalize`` where it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

VERSION = 1
OVERLAP_DIVISOR = 4  # overlap = window capacity // 4


def rule() -> dict:
    """The late-chunking rule as vector keys record it (``bench.encoders.vector_identity``)."""
    return {"version": VERSION, "tokens": "each chunk alone, no special tokens, concatenated",
            "window": "the model's token limit less its special tokens and document prompt",
            "overlap": f"window // {OVERLAP_DIVISOR}", "pooling": "mean of a chunk's own tokens' states"}  # fmt: skip


@dataclass(frozen=True)
class Window:
    """One pass: content tokens ``[start, own_end)`` go in; the states of ``[own_start, own_end)`` are kept."""

    start: int
    own_start: int
    own_end: int


def windows(n_tokens: int, capacity: int) -> list[Window]:
    """The windows of a document of ``n_tokens`` content tokens (rule 2)."""
    if capacity < 2:
        raise ValueError(f"a late-chunking window must hold at least 2 content tokens, got {capacity}")
    if n_tokens <= capacity:
        return [Window(0, 0, n_tokens)]
    overlap = capacity // OVERLAP_DIVISOR
    out, owned = [Window(0, 0, capacity)], capacity
    while owned < n_tokens:
        end = min(owned + capacity - overlap, n_tokens)
        out.append(Window(owned - overlap, owned, end))
        owned = end
    return out


def chunk_means(states: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Mean of each chunk's rows of ``states`` (a document's token states, chunk after chunk)."""
    bounds = np.cumsum([0, *lengths])
    if bounds[-1] != len(states):
        raise ValueError(f"{len(states)} token states for chunks of {int(bounds[-1])} tokens")
    return np.stack([states[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)
