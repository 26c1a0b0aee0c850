"""Retrieval tasks from MTEB's own registry and loaders (``source: mteb``).

The task's pinned dataset revision, evaluation splits, subsets, languages, main score and
identical-id rule come from MTEB's metadata; the rules applied to its data (which queries count,
instructions, tie order) are MTEB's and live in ``bench.taskdata``. Tasks bench would score
differently from MTEB (re-ranking of given candidates, a main score it does not compute,
aggregates, non-text inputs) are refused with one line.

Loading needs the Hugging Face hub (or its local cache): when the hub cannot be reached, the
hub's offline variables are set so the libraries answer from the cache at once or fail, instead
of hanging on retries, and the harness says so in one line.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import replace
from urllib.parse import urlsplit

from bench.errors import InputError, Unavailable
from bench.metrics import FAMILIES, K_VALUES, METRICS
from bench.taskdata import document_text, judged, query_text
from bench.types import TaskData, TaskSpec

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers a TCP connection within ``timeout`` (DNS included)."""
    host = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def ensure_offline_when_unreachable() -> bool:
    """Set the offline variables when the hub is unreachable; True when working offline.

    The hub libraries read these variables when they are imported, so a library imported earlier
    is also switched over through its own settings."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        _offline_in_loaded_libraries()
        return True
    if hub_reachable():
        return False
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    _offline_in_loaded_libraries()
    return True


def _offline_in_loaded_libraries() -> None:
    import sys

    for module, names in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                          ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")),
                          ):  # fmt: skip
        loaded = sys.modules.get(module)
        for name in names if loaded is not None else ():
            if hasattr(loaded, name):
                setattr(loaded, name, True)


RETRIEVAL_TYPES = ("Retrieval", "InstructionRetrieval")


def get_mteb_task(name: str, **filters):
    """MTEB's task object (``filters``: ``eval_splits``/``hf_subsets`` for ``mteb.get_task``), after
    checking that bench evaluates it exactly as MTEB does; otherwise one line saying why not."""
    ensure_offline_when_unreachable()  # before mteb imports the hub libraries
    import mteb
    from mteb.abstasks.aggregated_task import AbsTaskAggregate
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    try:
        task = mteb.get_task(name, **filters)
    except KeyError as exc:
        raise InputError(f"MTEB has no task {name!r}: {str(exc).strip(chr(34))}") from None
    except ValueError as exc:  # a subset filter that matches nothing
        raise InputError(f"MTEB task {name}: {str(exc).splitlines()[0]}") from None
    kind = task.metadata.type
    article = "an" if kind[:1] in "AEIOU" else "a"
    if "Reranking" in kind:
        raise InputError(f"MTEB task {name} is {article} {kind} task: MTEB re-ranks its given candidates; "
                         "bench runs full-corpus search only and does not run it")  # fmt: skip
    if kind not in RETRIEVAL_TYPES or not isinstance(task, AbsTaskRetrieval):
        what = "an aggregate of several tasks" if isinstance(task, AbsTaskAggregate) else f"{article} {kind} task"
        raise InputError(f"MTEB task {name} is {what}; only single retrieval tasks run here")
    _check_scored_alike(task)
    return task


def _check_scored_alike(task) -> None:
    """Refuse what bench would score differently: non-text inputs, a main score bench does not
    compute (``robustness_at_10``, ``recall_at_2``, ...), dropping the first result."""
    name, main = task.metadata.name, task.metadata.main_score
    if list(task.metadata.modalities) != ["text"]:
        raise InputError(f"MTEB task {name} has {'+'.join(task.metadata.modalities)} inputs; only text tasks run here")
    if main not in METRICS:
        raise InputError(f"MTEB task {name} is scored on {main!r}, which bench does not compute "
                         f"(it computes {', '.join(FAMILIES)} at k in {list(K_VALUES)})")  # fmt: skip
    if task.skip_first_result:
        raise InputError(f"MTEB task {name} drops each query's first result; bench does not")


def expand_mteb(spec: TaskSpec) -> list[TaskSpec]:
    """The concrete specs of an MTEB task declaration: every (split, subset) it leaves open
    (MTEB's ``eval_splits`` x ``hf_subsets``, split-major as MTEB evaluates them), each with
    the main score, dataset revision, languages and identical-id rule from MTEB's metadata."""
    task = get_mteb_task(spec.name)
    meta, where = task.metadata, spec.defined_in
    langs = meta.hf_subsets_to_langscripts
    if spec.subset and spec.subset not in langs:
        raise InputError(f"MTEB task {spec.name} has no subset {spec.subset!r}; it has {list(langs)} ({where})")
    revision = str(meta.dataset["revision"])
    for key, ours, theirs in (("main_score", spec.main_score, meta.main_score), ("revision", spec.revision, revision)):
        if ours and ours != theirs:
            raise InputError(f"{where}: {key} {ours!r} differs from MTEB's metadata of {spec.name} ({theirs!r})")
    splits = [spec.split] if spec.split else list(meta.eval_splits)
    subsets = [spec.subset] if spec.subset else list(langs)
    declared, theirs_rule = spec.ignore_identical_ids, bool(task.ignore_identical_ids)
    if declared is not None and bool(declared) != theirs_rule:
        raise InputError(f"{where}: ignore_identical_ids {str(bool(declared)).lower()} differs from MTEB's metadata of "
                         f"{spec.name} ({str(theirs_rule).lower()})")  # fmt: skip
    theirs = sorted({lang for subset in subsets for lang in langs[subset]})
    if spec.languages and sorted(spec.languages) != theirs:
        raise InputError(f"{where}: languages {list(spec.languages)} differ from MTEB's metadata of {spec.name} "
                         f"({theirs})")  # fmt: skip
    return [replace(spec, split=split, subset=subset, main_score=meta.main_score, revision=revision,
                    languages=tuple(langs[subset]), ignore_identical_ids=theirs_rule)
            for split in splits for subset in subsets]  # fmt: skip


def _column(table, name: str) -> list | None:
    try:
        return list(table[name])
    except (KeyError, ValueError):
        return None


def task_data_from_mteb(task, spec: TaskSpec) -> TaskData:
    """Convert a loaded MTEB retrieval task's split and subset into ``TaskData``, MTEB's way:
    the raw judgements go to ``bench.taskdata``, which applies MTEB's query rule."""
    if spec.subset not in task.dataset:
        raise InputError(f"MTEB task {spec.name} has no subset {spec.subset!r}; it has {sorted(task.dataset)}")
    if spec.split not in task.dataset[spec.subset]:
        have = sorted(task.dataset[spec.subset])
        raise InputError(f"MTEB task {spec.name} has no split {spec.split!r}; it has {have}")
    data = task.dataset[spec.subset][spec.split]
    if data.get("top_ranked") is not None:
        raise InputError(f"MTEB task {spec.name} ({spec.subset}, {spec.split}) re-ranks given top_ranked candidates; "
                         "bench runs full-corpus search only and does not run it")  # fmt: skip
    ids, texts = _column(data["corpus"], "id"), _column(data["corpus"], "text")
    titles = _column(data["corpus"], "title") or [""] * len(ids)
    corpus = unique_ids(spec, "corpus", ids, [document_text(t, x) for t, x in zip(titles, texts)])
    q_texts = _column(data["queries"], "text")
    instructions = _column(data["queries"], "instruction") or [None] * len(q_texts)
    queries = unique_ids(spec, "queries", _column(data["queries"], "id"),
                         [query_text(t, n) for t, n in zip(q_texts, instructions)])  # fmt: skip
    qrels = {str(q): {str(d): int(s) for d, s in rels.items()} for q, rels in data["relevant_docs"].items()}
    return judged(spec, corpus, queries, qrels)


def unique_ids(spec: TaskSpec, part: str, ids, texts) -> dict[str, str]:
    """Id -> text; an id twice is refused (MTEB keeps both rows, a mapping would keep the last)."""
    out: dict[str, str] = {}
    for i, text in zip(ids, texts):
        key = str(i)
        if key in out:
            raise InputError(f"MTEB task {spec.name} ({spec.subset}, {spec.split}): its {part} has the id {key!r} "
                             "twice; bench scores each id once and will not pick one of its texts")  # fmt: skip
        out[key] = text
    return out


def load_mteb(spec: TaskSpec) -> TaskData:
    """One (split, subset) of an MTEB task, through MTEB's own loader (only that split and subset)."""
    offline = ensure_offline_when_unreachable()
    task = get_mteb_task(spec.name, eval_splits=[spec.split], hf_subsets=[spec.subset])
    try:
        task.load_data()
        task.convert_v1_dataset_format_to_v2(num_proc=None)  # as mteb's evaluate does
    except Exception as exc:  # noqa: BLE001 - datasets/hub raise many types; one clear line instead
        where = "the Hugging Face hub is unreachable and" if offline else "loading failed:"
        raise (Unavailable if offline else InputError)(
            f"MTEB task {spec.name} (dataset {task.metadata.dataset.get('path')} at revision "
            f"{task.metadata.dataset.get('revision')}): {where} {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        ) from None
    return task_data_from_mteb(task, spec)
