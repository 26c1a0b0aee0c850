"""Chunked tasks: documents are ordered lists of chunks, judgements name chunks (ConTEB's layout).

Two local task sources:

- ``chunked``: a folder holding

  - ``documents.jsonl`` (or ``.gz``): one document per line, ``{"_id": "<document id>",
    "chunks": [{"_id": "<chunk id>", "text": "..."}, ...]}``, its chunks in document order. A
    document has at least one chunk; a chunk's text is not blank; chunk ids are unique across
    the file (and never contain a tab or line break); document ids are unique.
  - ``queries.jsonl`` (or ``.gz``): ``{"_id": "<query id>", "text": "..."}`` per line, as BEIR.
  - ``qrels/<split>.tsv``: ``query-id<TAB>chunk-id<TAB>score`` (header optional), as BEIR, with
    chunk ids where BEIR has document ids.

  Every line is checked; the first bad one is one error naming ``file:line``.
- ``squad-chunked``: a SQuAD-format JSON file (optionally gzipped) of long documents with answer
  spans, cut into chunks by ``bench.chunking`` at load time (COVID-QA, bundled). A paragraph is a
  document (its ``document_id``, else ``<article>-<paragraph>``); its chunks are
  ``<document>_<index>``. A question's relevant chunks are those its answer touches: the answer
  is found at its ``answer_start``, else at the nearest occurrence of its text within
  ``ANSWER_SLACK`` characters; a question whose answer is in neither place, is blank, or is
  marked unanswerable is dropped, and the loader says how many and why.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import chunking
from bench.beir import (check_unicode, find_file, json_record, numbered_lines, queries_with_instructions,
                        read_judgements, read_jsonl, record_id, task_folder)
from bench.errors import InputError
from bench.taskdata import judged_chunks
from bench.types import TaskData, TaskSpec

log = logging.getLogger(__name__)

ANSWER_SLACK = 16  # characters an answer_start may be off by (COVID-QA's are off by at most 3)
LABELS_VERSION = 1  # bump when the answer-to-chunk rule changes


def labelling_identity(max_words: int) -> str:
    """The chunker and the answer rule of a ``squad-chunked`` task, as its spec records them."""
    return f"{chunking.describe(max_words)};answers/v{LABELS_VERSION}/slack{ANSWER_SLACK}"


# --------------------------------------------------------------------------- a chunked folder


def _chunk(item: object, where: str, index: int) -> tuple[str, str]:
    if not isinstance(item, dict) or "_id" not in item:
        raise InputError(f"{where}: chunk {index} must be an object with '_id' and 'text'")
    chunk_id = record_id(item["_id"], f"{where}: chunk {index}")
    text = item.get("text")
    if not isinstance(text, str):
        raise InputError(f"{where}: chunk {chunk_id!r}: 'text' must be a string")
    check_unicode(text, where, "text")
    if not text.strip():
        raise InputError(f"{where}: chunk {chunk_id!r} has empty text")
    return chunk_id, text


def _document(line: str, where: str) -> tuple[str, list[tuple[str, str]]]:
    record, doc_id = json_record(line, where)
    chunks = record.get("chunks")
    if not isinstance(chunks, list):
        raise InputError(f"{where}: document {doc_id!r}: 'chunks' must be a list of chunks")
    if not chunks:
        raise InputError(f"{where}: document {doc_id!r} has an empty chunk list")
    return doc_id, [_chunk(item, where, i) for i, item in enumerate(chunks)]


def read_documents(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Documents of a ``documents.jsonl``: id -> (chunk id, text) in order, every line checked."""
    documents: dict[str, list[tuple[str, str]]] = {}
    seen: dict[str, str] = {}  # chunk id -> where it first appeared
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        doc_id, chunks = _document(line, where)
        if doc_id in documents:
            raise InputError(f"{where}: duplicate document id {doc_id!r}")
        for chunk_id, _ in chunks:
            if chunk_id in seen:
                raise InputError(f"{where}: duplicate chunk id {chunk_id!r} (first at {seen[chunk_id]})")
            seen[chunk_id] = where
        documents[doc_id] = chunks
    if not documents:
        raise InputError(f"{path}: no documents")
    return documents


def load_chunked(spec: TaskSpec) -> TaskData:
    """A chunked folder (see the module docstring), scored on its chunks by MTEB's rules."""
    folder = task_folder(spec)
    documents = read_documents(find_file(folder, "documents.jsonl"))
    chunk_ids = {c for chunks in documents.values() for c, _ in chunks}
    queries = read_jsonl(find_file(folder, "queries.jsonl"), ("text",), ("instruction",))
    qrels = read_judgements(folder, spec.split, queries, chunk_ids, "chunk id {!r} does not exist in documents.jsonl")
    return judged_chunks(spec, documents, queries_with_instructions(queries), qrels)


# --------------------------------------------------------------------------- SQuAD-format documents


@dataclass
class Derivation:
    """What deriving a chunked task from SQuAD-format answers kept, moved and dropped."""

    questions: int = 0
    kept: int = 0
    moved: Counter = field(default_factory=Counter)  # characters an offset was off by -> questions
    dropped: Counter = field(default_factory=Counter)  # reason -> questions
    crossing: int = 0  # kept questions whose answer touches more than one chunk

    def summary(self, name: str) -> str:
        moved = ", ".join(f"{n} by {d}" for d, n in sorted(self.moved.items())) or "none"
        dropped = ", ".join(f"{n} {r}" for r, n in sorted(self.dropped.items())) or "none"
        return (f"task {name}: {self.kept} of {self.questions} questions kept; dropped: {dropped}; answer offsets "
                f"moved to the answer text (characters): {moved}; {self.crossing} answers touch two or more chunks")


def _read_json(path: Path) -> object:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None


def _field(node: object, key: str, kind: type, where: str):
    value = node.get(key) if isinstance(node, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _paragraphs(raw: object, path: Path):
    """(document id, context, qas, where) of every paragraph, checked."""
    articles = _field(raw, "data", list, str(path))
    seen: set[str] = set()
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, f"{path}: data[{a}]")):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where)
            doc_id = str(paragraph.get("document_id", f"{a}-{p}")) if isinstance(paragraph, dict) else ""
            record_id(doc_id, f"{where}.document_id")
            if doc_id in seen:
                raise InputError(f"{where}.document_id: duplicate document id {doc_id!r}")
            seen.add(doc_id)
            if not context.strip():
                raise InputError(f"{where}.context: empty document {doc_id!r}")
            yield doc_id, context, _field(paragraph, "qas", list, where), where


def _relevant(context: str, spans: list[chunking.Span], qa: dict, where: str, report: Derivation) -> set[int] | str:
    """Chunk indexes a question's answers touch, or the reason it is dropped."""
    if qa.get("is_impossible"):
        return "unanswerable"
    answers = _field(qa, "answers", list, where)
    if not answers:
        return "without an answer"
    touched: set[int] = set()
    for i, answer in enumerate(answers):
        text = _field(answer, "text", str, f"{where}.answers[{i}]")
        start = _field(answer, "answer_start", int, f"{where}.answers[{i}]")
        found = chunking.locate(context, start, text, ANSWER_SLACK) if text.strip() else None
        if found is None:
            return "blank answer" if not text.strip() else f"answer text not within {ANSWER_SLACK} characters of its offset"
        if found != start:
            report.moved[abs(found - start)] += 1
        touched |= set(chunking.labels(spans, chunking.answer_core(context, found, text)))
    return touched


def derive_squad(path: Path, max_words: int) -> tuple[dict, dict, dict, Derivation]:
    """Documents (id -> (chunk id, text) pairs), queries and chunk judgements of a SQuAD-format file."""
    documents, queries, qrels, report = {}, {}, {}, Derivation()
    for doc_id, context, qas, where in _paragraphs(_read_json(path), path):
        spans = chunking.chunk_spans(context, max_words)
        chunk_ids = [f"{doc_id}_{i}" for i in range(len(spans))]
        documents[doc_id] = [(c, context[s.start : s.end]) for c, s in zip(chunk_ids, spans)]
        for q, qa in enumerate(qas):
            qwhere = f"{where}.qas[{q}]"
            qid = record_id(qa.get("id") if isinstance(qa, dict) else None, f"{qwhere}.id")
            question = _field(qa, "question", str, qwhere)
            if qid in queries:
                raise InputError(f"{qwhere}.id: duplicate question id {qid!r}")
            report.questions += 1
            relevant = _relevant(context, spans, qa, qwhere, report)
            if isinstance(relevant, str):
                report.dropped[relevant] += 1
                continue
            report.kept += 1
            report.crossing += len(relevant) > 1
            queries[qid] = question
            qrels[qid] = {chunk_ids[i]: 1 for i in sorted(relevant)}
    return documents, queries, qrels, report


def load_squad_chunked(spec: TaskSpec) -> TaskData:
    """A SQuAD-format file cut into chunks by the spec's word budget (see the module docstring)."""
    if not spec.path.is_file():
        raise InputError(f"{spec.path}: task file not found (task {spec.name}, {spec.defined_in})")
    documents, queries, qrels, report = derive_squad(spec.path, spec.chunk_words)
    log.info("%s", report.summary(spec.name))
    return judged_chunks(spec, documents, queries, qrels)
