"""The ``beir`` task source: a local BEIR folder.

``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``, each optionally gzipped; every
line is checked and an error names the file and line.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from pathlib import Path
from typing import Container, Iterator, Mapping

from bench.errors import InputError, parse_json
from bench.taskdata import document_text, judged, query_text
from bench.types import TaskData, TaskSpec

log = logging.getLogger(__name__)


def find_file(folder: Path, stem: str) -> Path:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (the plain file, with a warning, where
    both do); else one line saying neither does."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            if candidate.suffix != ".gz" and (folder / f"{stem}.gz").is_file():
                log.warning("%s and %s.gz both exist; reading %s", candidate, stem, candidate.name)
            return candidate
    raise InputError(f"{folder / stem}: file not found (nor {stem}.gz)")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
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
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a gzip stream corrupt inside
        raise InputError(f"{path}: unreadable after line {lineno} ({exc})") from None


def read_jsonl(path: Path, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, dict]:
    """Records of a JSON-lines file by ``_id``: each line an object with a unique id, a string
    ``text`` (as MTEB requires: a body stored under another key is refused, not read as empty) and
    the other string ``fields`` and ``optional`` fields where present (``fields`` not all empty);
    the first bad line is one error naming ``file:line``."""
    records: dict[str, dict] = {}
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        record, doc_id = json_record(line, where)
        if doc_id in records:
            raise InputError(f"{where}: duplicate id {doc_id!r}")
        if "text" not in record:
            keys = ", ".join(map(str, record))
            raise InputError(f"{where}: record {doc_id!r} has no 'text' field (its keys: {keys})")
        for name in fields + tuple(n for n in optional if record.get(n) is not None):  # null: absent, as in mteb
            if not isinstance(record.get(name, ""), str):
                raise InputError(f"{where}: field {name!r} must be a string")
            check_unicode(record.get(name, ""), where, name)
        if not "".join(record.get(name, "") or "" for name in fields).strip():
            raise InputError(f"{where}: empty text for id {doc_id!r}")
        records[doc_id] = record
    return records


def json_record(line: str, where: str) -> tuple[dict, str]:
    """One JSON-lines record and its checked ``_id``; a malformed line is one error naming ``where``."""
    record = parse_json(line, where)
    if not isinstance(record, dict) or "_id" not in record:
        raise InputError(f"{where}: expected a JSON object with an '_id'")
    return record, record_id(record["_id"], where)


def record_id(value: object, where: str) -> str:
    """An id is a non-empty string (or an integer, as some BEIR exports write them)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise InputError(f"{where}: '_id' must be a non-empty string, got {value!r:.40}")
    text = str(value)
    check_unicode(text, where, "_id")
    if "\t" in text or "\n" in text or "\r" in text:
        raise InputError(f"{where}: '_id' {text!r:.40} holds a tab or line break (qrels could not name it)")
    return text


def check_unicode(text: str, where: str, field: str) -> None:
    """JSON escapes can spell lone surrogates (``\\ud800``), which no UTF-8 text can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{where}: field {field!r} holds an invalid Unicode escape (a lone surrogate at "
                         f"character {exc.start})") from None  # fmt: skip


# ASCII digits only: int() also takes "1_0" and digits of other scripts, which qrels never mean.
_RELEVANCE = re.compile(r"-?[0-9]{1,10}")
# pytrec_eval (trec_eval) allocates memory per relevance level for every query's nDCG (about 8
# bytes a level: 2**31 - 1 took 17 GB for six documents); real judgements use a handful of levels.
MAX_RELEVANCE = 1_000_000


def _relevance(text: str, where: str) -> int:
    if not _RELEVANCE.fullmatch(text.strip()):
        raise InputError(f"{where}: relevance must be an integer, got {text!r}")
    score = int(text)
    if score < 0:
        raise InputError(f"{where}: relevance must not be negative, got {score}")
    if score > MAX_RELEVANCE:
        raise InputError(f"{where}: relevance {score} is above {MAX_RELEVANCE:,} (pytrec_eval allocates memory "
                         "for every relevance level)")  # fmt: skip
    return score


def _is_header(row: list[str]) -> bool:
    """BEIR's header line (``query-id``, ``corpus-id`` or ``chunk-id``, ``score``): three fields, the
    first ``query-id`` and the last no relevance. A judgement of a query whose id is ``query-id``
    is not one; a file whose line breaks are lone carriage returns (one long line) is not either."""
    return len(row) == 3 and row[0] == "query-id" and not _RELEVANCE.fullmatch(row[2].strip())


def read_qrels(path: Path) -> Iterator[tuple[str, str, int, str]]:
    """(query id, document id, relevance, where) per line of a BEIR qrels TSV (header optional)."""
    for lineno, line in numbered_lines(path):
        where = f"{path}:{lineno}"
        row = line.rstrip("\r\n").split("\t")
        if lineno == 1 and _is_header(row):
            continue
        if not "".join(row).strip():
            continue
        if len(row) != 3:
            hint = " (a carriage return inside the line: lines must end in \\n or \\r\\n)" if "\r" in line.rstrip("\r\n") else ""
            raise InputError(f"{where}: expected 3 tab-separated fields, got {len(row)}{hint}")
        yield row[0], row[1], _relevance(row[2], where), where


def task_folder(spec: TaskSpec) -> Path:
    """A folder task's folder, or one input error naming the task and where it was defined."""
    if not spec.path.is_dir():
        raise InputError(f"{spec.path}: task folder not found (task {spec.name}, {spec.defined_in})")
    return spec.path


def read_judgements(folder: Path, split: str, queries: Mapping, targets: Container[str],
                    unknown: str) -> dict[str, dict[str, int]]:  # fmt: skip
    """``qrels/<split>.tsv`` of a task folder, every line naming a known query and a known target
    (a document or chunk id; ``unknown`` formats the error for one that is not)."""
    qrels: dict[str, dict[str, int]] = {}
    path, conflicts = find_file(folder / "qrels", f"{split}.tsv"), []
    for qid, target, score, where in read_qrels(path):
        if qid not in queries:
            raise InputError(f"{where}: query id {qid!r} is not in queries.jsonl")
        if target not in targets:
            raise InputError(f"{where}: {unknown.format(target)}")
        if qrels.get(qid, {}).get(target, score) != score:
            conflicts.append(where)
        qrels.setdefault(qid, {})[target] = score
    if conflicts:
        log.warning("%s: %d line(s) judge a (query, document) pair judged before with another relevance, "
                    "first %s; the last judgement counts, as in mteb", path, len(conflicts), conflicts[0])  # fmt: skip
    return qrels


def load_beir(spec: TaskSpec) -> TaskData:
    """Load a BEIR folder; documents, queries and judgements follow MTEB's rules (``bench.taskdata``)."""
    folder = task_folder(spec)
    docs = read_jsonl(find_file(folder, "corpus.jsonl"), ("title", "text"))
    all_queries = read_jsonl(find_file(folder, "queries.jsonl"), ("text",), ("instruction",))
    qrels = read_judgements(folder, spec.split, all_queries, docs, "document id {!r} is not in corpus.jsonl")
    corpus = {d: document_text(r.get("title", ""), r.get("text", "")) for d, r in docs.items()}
    return judged(spec, corpus, queries_with_instructions(all_queries), qrels)


def queries_with_instructions(records: dict[str, dict]) -> dict[str, str]:
    """Query texts as MTEB builds them: a record's ``instruction``, where it has one, after its
    text (``bench.taskdata.query_text``)."""
    return {q: query_text(r["text"], r.get("instruction")) for q, r in records.items()}
