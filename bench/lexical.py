"""Lexical baselines: BM25 through the ``bm25s`` library, scored like every other cell.

bm25s's documented defaults are kept: ``bm25s.tokenize`` (lower-casing, scikit-learn's token
pattern ``(?u)\\b\\w\\w+\\b``, its English stop-word list) and ``bm25s.BM25()`` (Lucene's BM25,
``k1 = 1.5``, ``b = 0.75``). ``bm25-stemmed`` adds PyStemmer's English Snowball stemmer to both
documents and queries. Documents are embedded text's twin: ``(title + " " + text).strip()``.

bm25s computes every query's score for every document; the top-k is then taken by bench's own
exact rule (score, then lower corpus position), so ties resolve as in every dense cell. A document
scoring 0 shares no term with the query and is not retrieved (Lucene, and BEIR's Elasticsearch
runs, return only matching documents); its slot is left empty (index -1).

In the result grid a lexical baseline is a cell with model ``bm25`` (or ``bm25-stemmed``), backend
``bm25s``, dimension 0 and precision ``sparse``: it has no dimensions or precisions of its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bench.errors import InputError, unknown
from bench.search import Hits, top_k

BACKEND = "bm25s"
DIM = 0  # no dimensions: a sparse vocabulary-sized representation
PRECISION = "sparse"


@dataclass(frozen=True)
class LexicalSpec:
    """A lexical retriever: bm25s's defaults, with or without stemming."""

    name: str
    stemmer: str = ""  # PyStemmer language, or "" for none
    stopwords: str = "english"  # bm25s.tokenize's default
    method: str = "lucene"  # bm25s.BM25's defaults
    k1: float = 1.5
    b: float = 0.75

    @property
    def description(self) -> str:
        stem = f", {self.stemmer} Snowball stemming" if self.stemmer else ", no stemming"
        return f"bm25s {self.method} BM25 (k1={self.k1}, b={self.b}), {self.stopwords} stop words{stem}"


LEXICAL = {spec.name: spec for spec in (LexicalSpec("bm25"), LexicalSpec("bm25-stemmed", stemmer="english"))}


def parse(value: object, where: str) -> str:
    if not isinstance(value, str) or value not in LEXICAL:
        raise InputError(f"{where}: {unknown('lexical baseline', str(value), LEXICAL)}")
    return value


def version() -> str:
    from importlib.metadata import version as installed

    return installed("bm25s")


def _bm25s():
    """The bm25s module; it sets its own logger to DEBUG on import, which would print index
    internals on every run, so it is brought back to the warnings level here."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _stemmer(spec: LexicalSpec):
    if not spec.stemmer:
        return None
    import Stemmer

    return Stemmer.Stemmer(spec.stemmer)


@dataclass
class LexicalIndex:
    """A bm25s index over a corpus; ``search`` takes query texts."""

    spec: LexicalSpec
    retriever: object  # bm25s.BM25
    stemmer: object | None
    index_seconds: float

    @property
    def nbytes(self) -> int:
        """The eager score matrix (CSC data, indices, indptr); the vocabulary dict is not counted."""
        scores = self.retriever.scores
        return int(sum(scores[key].nbytes for key in ("data", "indices", "indptr")))

    def search(self, queries: Sequence[str], k: int) -> Hits:
        """Exact top-k by BM25 score, ties by lower corpus position; non-matching slots are -1."""
        tokens = _bm25s().tokenize(list(queries), stopwords=self.spec.stopwords, stemmer=self.stemmer,
                                return_ids=False, show_progress=False)  # fmt: skip
        n_docs = int(self.retriever.scores["num_docs"])
        indices = np.full((len(tokens), k), -1, dtype=np.int64)
        scores = np.full((len(tokens), k), -np.inf, dtype=np.float32)
        for row, query in enumerate(tokens):
            s = self.retriever.get_scores(query) if query else np.zeros(n_docs, np.float32)
            matched = np.flatnonzero(s > 0)
            best_s, best_i = top_k(s[matched][None, :], matched[None, :].astype(np.int64), min(k, len(matched)))
            indices[row, : best_i.shape[1]], scores[row, : best_s.shape[1]] = best_i[0], best_s[0]
        return Hits(indices=indices, scores=scores)


def build(spec: LexicalSpec, corpus: Sequence[str]) -> LexicalIndex:
    """Tokenize and index the corpus with bm25s."""
    bm25s = _bm25s()
    t0 = time.perf_counter()
    stemmer = _stemmer(spec)
    tokenized = bm25s.tokenize(list(corpus), stopwords=spec.stopwords, stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(method=spec.method, k1=spec.k1, b=spec.b)
    retriever.index(tokenized, show_progress=False)
    return LexicalIndex(spec, retriever, stemmer, time.perf_counter() - t0)
