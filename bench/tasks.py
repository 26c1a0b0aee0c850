"""Task specs from ``tasks/retrieval/*.yaml`` and loaders for their data.

One loader per data format, not one class per dataset. The ``beir`` loader reads a BEIR folder:
``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``, each optionally gzipped.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterator

from bench.errors import InputError, unknown
from bench.registry import Registry
from bench.types import TaskData, TaskSpec
from bench.yamlio import check_keys, load_yaml, require_mapping, typed

TASK_KEYS = (
    "name", "type", "source", "path", "split", "subset", "main_score", "ignore_identical_ids",
    "revision", "license", "description", "reference",
)  # fmt: skip

log = logging.getLogger(__name__)
LOADERS: Registry[Callable[[TaskSpec], TaskData]] = Registry("task source")


def default_tasks_dir() -> Path:
    """The ``tasks/`` folder: ``$BENCH_TASKS_DIR`` or the one beside the package."""
    env = os.environ.get("BENCH_TASKS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "tasks"


def read_task_spec(path: Path) -> TaskSpec:
    """Parse and validate one task YAML file."""
    raw = require_mapping(load_yaml(path), str(path))
    check_keys(raw, TASK_KEYS, required=("name", "source"))
    if typed(raw, "type", str, "retrieval") != "retrieval":
        raise InputError(f"{raw.where('type')}: only type 'retrieval' is supported")
    source = typed(raw, "source", str)
    if source not in LOADERS:
        raise InputError(f"{raw.where('source')}: {unknown('task source', source, LOADERS)}")
    return TaskSpec(
        name=typed(raw, "name", str),
        source=source,
        path=(path.parent / typed(raw, "path", str, ".")).resolve(),
        split=typed(raw, "split", str, "test"),
        subset=typed(raw, "subset", str, "default"),
        main_score=typed(raw, "main_score", str, "ndcg_at_10"),
        ignore_identical_ids=typed(raw, "ignore_identical_ids", bool, False),
        revision=str(typed(raw, "revision", (str, int), "")),
        license=typed(raw, "license", str, ""),
        description=typed(raw, "description", str, "").strip(),
        reference=typed(raw, "reference", str, ""),
        defined_in=str(path),
    )


class TaskRegistry(Registry[TaskSpec]):
    """Declared tasks; ``mteb:<Name>[/<subset>][@<split>]`` also names any MTEB retrieval task
    (default subset ``default``, split ``test``)."""

    def get(self, name: str) -> TaskSpec:
        if name.startswith("mteb:") and len(name) > 5:
            rest, _, split = name[5:].partition("@")
            task, _, subset = rest.partition("/")
            return TaskSpec(name=task, source="mteb", path=Path("."), split=split or "test",
                            subset=subset or "default", defined_in="command line")  # fmt: skip
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        return (isinstance(name, str) and name.startswith("mteb:")) or super().__contains__(name)


def task_registry(tasks_dir: Path | None = None) -> Registry[TaskSpec]:
    """Every task declared under ``tasks_dir/retrieval``."""
    registry: Registry[TaskSpec] = TaskRegistry("task")
    root = (tasks_dir or default_tasks_dir()) / "retrieval"
    for path in sorted(root.glob("*.yaml")):
        spec = read_task_spec(path)
        registry.add(spec.name, spec)
    return registry


def load_task(spec: TaskSpec) -> TaskData:
    """Load a task's data with the loader its spec names."""
    return LOADERS.get(spec.source)(spec)


# --------------------------------------------------------------------------- BEIR folders


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise InputError(f"{folder / stem}: file not found (nor {stem}.gz)")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line), decoding each line on its own so errors name the right line.
    A UTF-8 byte-order mark is accepted (and reported)."""
    lineno = 0
    try:
        with _open_binary(path) as handle:
            for lineno, raw in enumerate(handle, start=1):
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    log.warning("%s: starts with a UTF-8 byte-order mark; ignoring it", path)
                    raw = raw[3:]
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: unreadable after line {lineno} ({exc})") from None


def _read_jsonl(path: Path, fields: tuple[str, ...]) -> dict[str, dict]:
    records: dict[str, dict] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: malformed JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "_id" not in record:
            raise InputError(f"{where}: expected a JSON object with an '_id'")
        doc_id = str(record["_id"])
        if doc_id in records:
            raise InputError(f"{where}: duplicate id {doc_id!r}")
        for name in fields:
            if not isinstance(record.get(name, ""), str):
                raise InputError(f"{where}: field {name!r} must be a string")
        if not "".join(record.get(name, "") or "" for name in fields).strip():
            raise InputError(f"{where}: empty text for id {doc_id!r}")
        records[doc_id] = record
    return records


def _read_qrels(path: Path) -> Iterator[tuple[str, str, int, str]]:
    """(query id, document id, relevance, where) per line of a BEIR qrels TSV (header optional)."""
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        row = line.rstrip("\r\n").split("\t")
        if lineno == 1 and row[:1] == ["query-id"]:
            continue
        if not "".join(row).strip():
            continue
        if len(row) != 3:
            raise InputError(f"{where}: expected 3 tab-separated fields, got {len(row)}")
        try:
            score = int(row[2])
        except ValueError:
            raise InputError(f"{where}: relevance must be an integer, got {row[2]!r}") from None
        if score < 0:
            raise InputError(f"{where}: relevance must not be negative, got {score}")
        yield row[0], row[1], score, where


def load_beir(spec: TaskSpec) -> TaskData:
    """Load a BEIR folder the way MTEB does: documents are ``(title + " " + text).strip()``."""
    folder = spec.path
    if not folder.is_dir():
        raise InputError(f"{folder}: task folder not found (task {spec.name}, {spec.defined_in})")
    docs = _read_jsonl(_find(folder, "corpus.jsonl"), ("title", "text"))
    all_queries = _read_jsonl(_find(folder, "queries.jsonl"), ("text",))
    qrels: dict[str, dict[str, int]] = {}
    for qid, did, score, where in _read_qrels(_find(folder / "qrels", f"{spec.split}.tsv")):
        if qid not in all_queries:
            raise InputError(f"{where}: query id {qid!r} is not in queries.jsonl")
        if did not in docs:
            raise InputError(f"{where}: document id {did!r} is not in corpus.jsonl")
        qrels.setdefault(qid, {})[did] = score
    corpus = {d: (r.get("title", "") + " " + r.get("text", "")).strip() for d, r in docs.items()}
    return _judged(spec, corpus, {q: r.get("text", "") for q, r in all_queries.items()}, qrels)


def _judged(spec: TaskSpec, corpus: dict, queries: dict, qrels: dict) -> TaskData:
    """Keep the queries with at least one positive judgement, as MTEB evaluates them."""
    qrels = {q: rel for q, rel in qrels.items() if any(s > 0 for s in rel.values())}
    if not qrels:
        raise InputError(f"task {spec.name}: split {spec.split!r} has no judged queries")
    return TaskData(corpus=corpus, queries={q: queries[q] for q in sorted(qrels)}, qrels=qrels,
                    ignore_identical_ids=spec.ignore_identical_ids)  # fmt: skip


LOADERS.add("beir", load_beir)


def subset(data: TaskData, limit: int) -> TaskData:
    """A smoke-test subset: the first ``limit`` judged queries (by id), their judged documents,
    and the first ``10 * limit`` other documents of the corpus."""
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
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


def _register_mteb() -> None:
    from bench import mteb_tasks  # noqa: F401  (registers the "mteb" source)


_register_mteb()
