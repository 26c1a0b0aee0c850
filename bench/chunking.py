"""The chunker of derived chunked tasks (``source: squad-chunked``): a fixed word budget on
sentence boundaries, deterministic, versioned. Its name, version and budget are part of a task's
identity (``TaskSpec.chunker``), so a changed chunker never reuses a cell or a cached vector.

The rule (version 1):

1. **Sentences.** The text is cut after every ``.``, ``!`` or ``?`` (with any closing quotes or
   brackets right after it) that is followed by whitespace, and at every line break. Whitespace
   between two sentences belongs to neither.
2. **Chunks.** Sentences are packed in order, greedily: a chunk takes the next sentence while its
   word count (whitespace-separated words) stays within ``max_words``. A sentence longer than
   ``max_words`` on its own is cut into pieces of ``max_words`` words: each full piece is a chunk
   of its own, and the rest (fewer words) is packed like a sentence, so the sentences after it may
   join it.
3. **Spans.** A chunk is the text from its first sentence's first character to its last
   sentence's last non-space character; the chunks of a text cover all of its non-space
   characters, in order, without overlap.

``labels`` maps an answer span to the chunks it touches: every chunk whose span overlaps the
answer's characters once the answer's own leading and trailing whitespace is set aside (an answer
crossing a chunk boundary is relevant in every chunk it touches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = "sentence-words"
VERSION = 1
DEFAULT_MAX_WORDS = 100

# A sentence ends at . ! or ? (plus closing quotes/brackets) before whitespace, or at a line break.
_BOUNDARY = re.compile(r"[.!?][\"')\]]*(?=\s)|(?=\n)")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Span:
    """Characters ``[start, end)`` of a text."""

    start: int
    end: int


def describe(max_words: int) -> str:
    """The chunker's identity as tasks record it, e.g. ``sentence-words/v1/100``."""
    return f"{NAME}/v{VERSION}/{max_words}"


def sentences(text: str) -> list[Span]:
    """Spans of the sentences of ``text`` (rule 1), each without surrounding whitespace."""
    out, start = [], 0
    for match in _BOUNDARY.finditer(text):
        out += _trimmed(text, start, match.end())
        start = match.end()
    out += _trimmed(text, start, len(text))
    return out


def _trimmed(text: str, start: int, end: int) -> list[Span]:
    words = list(_WORD.finditer(text, start, end))
    return [Span(words[0].start(), words[-1].end())] if words else []


def _pieces(text: str, span: Span, max_words: int) -> list[tuple[Span, int]]:
    """A sentence as (span, words) pieces of at most ``max_words`` words (rule 2)."""
    words = list(_WORD.finditer(text, span.start, span.end))
    return [(Span(words[i].start(), words[min(i + max_words, len(words)) - 1].end()),
             min(max_words, len(words) - i)) for i in range(0, len(words), max_words)]  # fmt: skip


def chunk_spans(text: str, max_words: int = DEFAULT_MAX_WORDS) -> list[Span]:
    """The chunks of ``text`` (rules 1-3), in order."""
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    chunks: list[Span] = []
    current: Span | None = None
    count = 0
    for sentence in sentences(text):
        for piece, words in _pieces(text, sentence, max_words):
            if current is not None and count + words <= max_words:
                current, count = Span(current.start, piece.end), count + words
                continue
            if current is not None:
                chunks.append(current)
            current, count = piece, words
    if current is not None:
        chunks.append(current)
    return chunks


def answer_core(text: str, start: int, answer: str) -> Span | None:
    """The span of ``answer`` at ``start`` without its own leading/trailing whitespace (None if blank)."""
    inner = answer.strip()
    if not inner:
        return None
    lead = len(answer) - len(answer.lstrip())
    return Span(start + lead, start + lead + len(inner))


def labels(chunks: list[Span], answer: Span) -> list[int]:
    """Indexes of the chunks whose characters overlap ``answer``."""
    return [i for i, c in enumerate(chunks) if c.start < answer.end and answer.start < c.end]


def locate(text: str, start: int, answer: str, slack: int) -> int | None:
    """Where ``answer`` really starts: ``start`` when the text is there, else the nearest occurrence
    within ``slack`` characters of it (the earlier one on a tie), else None."""
    if text[start : start + len(answer)] == answer:
        return start
    best = None
    lo = max(0, start - slack)
    found = text.find(answer, lo, start + slack + len(answer))
    while found != -1 and found <= start + slack:
        if best is None or abs(found - start) < abs(best - start):
            best = found
        found = text.find(answer, found + 1, start + slack + len(answer))
    return best
