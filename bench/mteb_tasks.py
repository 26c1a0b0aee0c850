"""Retrieval tasks from MTEB's own registry and loaders (``source: mteb``).

The task's pinned dataset revision, evaluation split, subsets and identical-id rule come from
MTEB's metadata. Loading needs the Hugging Face hub (or its local cache): when the hub cannot be
reached, the hub's offline variables are set so the libraries answer from the cache at once or
fail, instead of hanging on retries, and the harness says so in one line.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlsplit

from bench.errors import InputError
from bench.taskdata import judged
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
    """Set the offline variables when the hub is unreachable; True when working offline."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return True
    if hub_reachable():
        return False
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    return True


def get_mteb_task(name: str):
    import mteb

    try:
        task = mteb.get_task(name)
    except KeyError as exc:
        raise InputError(f"MTEB has no task {name!r}: {str(exc).strip(chr(34))}") from None
    if task.metadata.type not in ("Retrieval", "InstructionRetrieval"):
        raise InputError(f"MTEB task {name} is a {task.metadata.type} task; only retrieval tasks run here")
    return task


def _column(table, name: str) -> list | None:
    try:
        return list(table[name])
    except (KeyError, ValueError):
        return None


def task_data_from_mteb(task, spec: TaskSpec) -> TaskData:
    """Convert a loaded MTEB retrieval task's split and subset into ``TaskData``, MTEB's way."""
    subset = spec.subset or "default"
    if subset not in task.dataset:
        raise InputError(f"MTEB task {spec.name} has no subset {subset!r}; it has {sorted(task.dataset)}")
    if spec.split not in task.dataset[subset]:
        raise InputError(f"MTEB task {spec.name} has no split {spec.split!r}; it has {sorted(task.dataset[subset])}")
    data = task.dataset[subset][spec.split]
    ids, texts = _column(data["corpus"], "id"), _column(data["corpus"], "text")
    titles = _column(data["corpus"], "title") or [""] * len(ids)
    corpus = {str(i): ((t + " " + x).strip() if t else x.strip()) for i, t, x in zip(ids, titles, texts)}
    q_texts = _column(data["queries"], "text")
    instructions = _column(data["queries"], "instruction")
    if instructions:
        q_texts = [f"{t} {i}" for t, i in zip(q_texts, instructions)]
    queries = dict(zip((str(i) for i in _column(data["queries"], "id")), q_texts))
    qrels = {str(q): {str(d): int(s) for d, s in rels.items()} for q, rels in data["relevant_docs"].items() if rels}
    qrels = {q: r for q, r in qrels.items() if q in queries}
    judged_data = judged(spec, corpus, queries, qrels)
    return TaskData(judged_data.corpus, judged_data.queries, judged_data.qrels, bool(getattr(task, "ignore_identical_ids", False)))


def load_mteb(spec: TaskSpec) -> TaskData:
    offline = ensure_offline_when_unreachable()
    task = get_mteb_task(spec.name)
    try:
        task.load_data()
    except Exception as exc:  # noqa: BLE001 - datasets/hub raise many types; one clear line instead
        where = "the Hugging Face hub is unreachable and" if offline else "loading failed:"
        raise InputError(
            f"MTEB task {spec.name} (dataset {task.metadata.dataset.get('path')} at revision "
            f"{task.metadata.dataset.get('revision')}): {where} {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        ) from None
    return task_data_from_mteb(task, spec)

