"""Rules on loaded task data shared by every loader, each stated once and equal to MTEB 2.x's:
which queries are evaluated, how a query's instruction joins its text, in which order the corpus
is held (which decides ties), and smoke subsets.

- **Queries** (``mteb``, the default): a query is evaluated when it has a non-empty judgement
  list, whatever the scores in it; a query judged only with 0 is kept and scores 0 on every
  metric (MTEB's ``_filter_queries_without_positives`` drops only empty lists). ``positive``,
  bench's older and stricter rule, keeps only queries with a judgement above 0; it gives other
  numbers than MTEB on tasks with zero-only queries and must be asked for by name.
- **Documents**: ``(title + " " + text).strip()`` when the title is not empty, else
  ``text.strip()`` (MTEB's ``_corpus_to_dict``); queries are never stripped.
- **Instructions**: ``text + " " + instruction``; a missing (None) instruction adds nothing. A
  conversation (a list of turns) becomes ``"; "``-joined turns (``role: content`` for dict
  turns), with the instruction in front (MTEB's ``_create_dataloaders``).
- **Chunked tasks**: documents are ordered lists of chunks and judgements name chunks (ConTEB's
  layout). The corpus holds the chunks (searched, scored and tie-ordered like any document),
  ``TaskData.documents`` keeps each document's chunk ids in order, for the context modes that
  embed a chunk with its document around it.
- **Ties**: the corpus is held in descending order of document id (code-point order, which is
  UTF-8 byte order), and exact search breaks ties by the lower position (``bench.search``), so
  ties at the top-k cut keep the larger ids, as MTEB's heap of ``(score, id)`` does. Within the
  top k, pytrec_eval (and MTEB's MRR) rank ties by document id descending too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.errors import InputError
from bench.types import TaskData, TaskSpec

QUERY_FILTERS = ("mteb", "positive")


def evaluated_query_ids(queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], rule: str) -> list[str]:
    """Ids of the queries a task evaluates under ``rule`` (one of ``QUERY_FILTERS``), sorted."""
    if rule == "mteb":
        keep = [q for q, rel in qrels.items() if len(rel) > 0]
    elif rule == "positive":
        keep = [q for q, rel in qrels.items() if any(s > 0 for s in rel.values())]
    else:
        raise InputError(f"unknown query filter {rule!r}; choose from: {', '.join(QUERY_FILTERS)}")
    return sorted(q for q in keep if q in queries)


def mteb_corpus_order(corpus: Mapping[str, str]) -> dict[str, str]:
    """The corpus in descending document-id order: the search's position tie rule becomes MTEB's."""
    return {d: corpus[d] for d in sorted(corpus, reverse=True)}


def judged(spec: TaskSpec, corpus: Mapping[str, str], queries: Mapping[str, str],
           qrels: Mapping[str, Mapping[str, int]]) -> TaskData:  # fmt: skip
    """The task data as evaluated: the queries ``spec.query_filter`` keeps, their judgements, and
    the corpus in MTEB's tie order."""
    qids = evaluated_query_ids(queries, qrels, spec.query_filter)
    if not any(s > 0 for q in qids for s in qrels[q].values()):
        where = f"task {spec.name}: split {spec.split!r}"
        where += f" subset {spec.subset!r}" if spec.subset != "default" else ""
        raise InputError(f"{where} has no judged queries (no query has a judgement above 0)")
    return TaskData(corpus=mteb_corpus_order(corpus), queries={q: queries[q] for q in qids},
                    qrels={q: dict(qrels[q]) for q in qids},
                    ignore_identical_ids=bool(spec.ignore_identical_ids))  # fmt: skip


def judged_chunks(spec: TaskSpec, documents: Mapping[str, Sequence[tuple[str, str]]], queries: Mapping[str, str],
                  qrels: Mapping[str, Mapping[str, int]]) -> TaskData:  # fmt: skip
    """A chunked task as evaluated: ``documents`` maps each document id to its (chunk id, text)
    pairs in document order; judgements name chunk ids (checked by the loader). The same query
    rule and tie order as every task apply, to the chunks."""
    corpus = {chunk: text for chunks in documents.values() for chunk, text in chunks}
    data = judged(spec, corpus, queries, qrels)
    order = {d: tuple(chunk for chunk, _ in chunks) for d, chunks in documents.items()}
    return TaskData(data.corpus, data.queries, data.qrels, data.ignore_identical_ids, documents=order)


def document_text(title: str | None, text: str) -> str:
    """The text a model reads for a document, as MTEB builds it (a None title counts as empty)."""
    return (title + " " + text).strip() if title else text.strip()


def _turn(turn: object) -> str:
    if isinstance(turn, str):
        return turn
    if isinstance(turn, Mapping) and "role" in turn and "content" in turn:
        return f"{turn['role']}: {turn['content']}"
    raise InputError(f"a conversation turn must be a string or a mapping with 'role' and 'content', got {turn!r}")


def query_text(text: str | Sequence[object], instruction: str | None = None) -> str:
    """The text a model reads for a query, as MTEB builds it (see the module docstring)."""
    if isinstance(text, str):
        return text if instruction is None else f"{text} {instruction}"
    if not text:
        raise InputError("a conversation query has no turns")
    conversation = "; ".join(_turn(t) for t in text)
    return conversation if instruction is None else f"{instruction} {conversation}"


def subset(data: TaskData, limit: int) -> TaskData:
    """A smoke-test subset: the first ``limit`` judged queries (by id), their judged documents,
    and the first ``10 * limit`` other documents of the corpus. A chunked task keeps whole
    documents (a chunk is never embedded without the rest of its document): those holding the
    judged chunks, then further documents in id order until ``10 * limit`` more chunks are in."""
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if data.documents is not None:
        return _chunked_subset(data, limit)
    qids = sorted(data.queries)[:limit]
    keep = {d for q in qids for d in data.qrels[q]}
    target = len(keep) + 10 * limit
    for doc_id in data.corpus:
        if len(keep) >= target:
            break
        keep.add(doc_id)
    corpus = {d: t for d, t in data.corpus.items() if d in keep}
    return TaskData(corpus, {q: data.queries[q] for q in qids}, {q: data.qrels[q] for q in qids},
                    data.ignore_identical_ids)  # fmt: skip


def _chunked_subset(data: TaskData, limit: int) -> TaskData:
    qids = sorted(data.queries)[:limit]
    owner = {chunk: doc for doc, chunks in data.documents.items() for chunk in chunks}
    keep = {owner[c] for q in qids for c in data.qrels[q] if c in owner}
    extra = 0
    for doc in sorted(data.documents):
        if extra >= 10 * limit:
            break
        if doc not in keep:
            keep.add(doc)
            extra += len(data.documents[doc])
    chunks = {c for d in keep for c in data.documents[d]}
    corpus = {c: t for c, t in data.corpus.items() if c in chunks}
    return TaskData(corpus, {q: data.queries[q] for q in qids}, {q: data.qrels[q] for q in qids},
                    data.ignore_identical_ids, {d: data.documents[d] for d in sorted(keep)})  # fmt: skip
