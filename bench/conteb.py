"""Published ConTEB tasks from the Hugging Face hub (``source: conteb``), through ``datasets``.

A ConTEB dataset (``illuin-conteb/<name>``) has a ``documents`` configuration (one row per chunk:
``chunk_id`` = ``<document>_<position>``, ``chunk``) and a ``queries`` configuration (one row per
query: ``query`` and the relevant ``chunk_id``, or a list ``chunk_ids``). Queries have no ids in
ConTEB; bench names them by row, ``q<row>``. A document's chunks are ordered by their position;
every relevance is 1; the main score is nDCG@10 over chunks, as ConTEB reports it.

The dataset is loaded at the revision the task YAML pins. Without the hub (or its local cache)
the hub's offline variables are set, as for MTEB tasks, so the task fails at once with one line.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

from bench.errors import InputError
from bench.mteb_tasks import ensure_offline_when_unreachable
from bench.taskdata import judged_chunks
from bench.types import TaskData, TaskSpec


def _position(chunk_id: str, where: str) -> tuple[str, int]:
    """ConTEB's ``<document>_<position>`` (the document id may itself hold underscores)."""
    doc, sep, position = chunk_id.rpartition("_")
    if not sep or not doc or not position.isdigit():
        raise InputError(f"{where}: chunk id {chunk_id!r} is not <document>_<position>")
    return doc, int(position)


def conteb_documents(rows: Iterable[Mapping], where: str) -> dict[str, list[tuple[str, str]]]:
    """Documents (id -> (chunk id, text) in position order) from ConTEB ``documents`` rows."""
    by_doc: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for i, row in enumerate(rows):
        chunk_id, text = row.get("chunk_id"), row.get("chunk")
        if not isinstance(chunk_id, str) or not isinstance(text, str):
            raise InputError(f"{where} row {i}: expected string 'chunk_id' and 'chunk'")
        if chunk_id in seen:
            raise InputError(f"{where} row {i}: duplicate chunk id {chunk_id!r}")
        if not text.strip():
            raise InputError(f"{where} row {i}: chunk {chunk_id!r} has empty text")
        seen.add(chunk_id)
        doc, position = _position(chunk_id, f"{where} row {i}")
        by_doc[doc].append((position, chunk_id, text))
    if not by_doc:
        raise InputError(f"{where}: no documents")
    return {d: [(c, t) for _, c, t in sorted(chunks)] for d, chunks in sorted(by_doc.items())}


def conteb_queries(rows: Iterable[Mapping], chunks: set[str], where: str) -> tuple[dict, dict]:
    """Queries (``q<row>`` -> text) and judgements from ConTEB ``queries`` rows; a chunk id that
    is not in the documents is refused (one line naming the row)."""
    queries, qrels = {}, {}
    for i, row in enumerate(rows):
        text = row.get("query")
        targets = row.get("chunk_ids", row.get("chunk_id"))
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(text, str) or not isinstance(targets, list) or not targets:
            raise InputError(f"{where} row {i}: expected a string 'query' and a 'chunk_id' (or 'chunk_ids')")
        missing = [t for t in targets if t not in chunks]
        if missing:
            raise InputError(f"{where} row {i}: chunk id {missing[0]!r} does not exist in the documents")
        queries[f"q{i}"] = text
        qrels[f"q{i}"] = {t: 1 for t in targets}
    return queries, qrels


def task_data_from_conteb(spec: TaskSpec, documents: Iterable[Mapping], queries: Iterable[Mapping]) -> TaskData:
    """A ConTEB split as ``TaskData`` (rows as the hub holds them)."""
    docs = conteb_documents(documents, f"ConTEB {spec.name} documents")
    chunk_ids = {c for chunks in docs.values() for c, _ in chunks}
    texts, qrels = conteb_queries(queries, chunk_ids, f"ConTEB {spec.name} queries")
    return judged_chunks(spec, docs, texts, qrels)


def load_conteb(spec: TaskSpec) -> TaskData:
    """One split of a ConTEB dataset at its pinned revision (see the module docstring)."""
    offline = ensure_offline_when_unreachable()
    dataset = spec.dataset
    try:
        from datasets import load_dataset

        docs = load_dataset(dataset, "documents", split=spec.split, revision=spec.revision)
        queries = load_dataset(dataset, "queries", split=spec.split, revision=spec.revision)
    except Exception as exc:  # noqa: BLE001 - datasets/hub raise many types; one clear line instead
        why = "the Hugging Face hub is unreachable and" if offline else "loading failed:"
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise InputError(f"ConTEB task {spec.name} (dataset {dataset} at revision {spec.revision or 'unpinned'}): "
                         f"{why} {type(exc).__name__}: {first}") from None  # fmt: skip
    return task_data_from_conteb(spec, docs, queries)
