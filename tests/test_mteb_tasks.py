import time
from pathlib import Path

import pytest

from bench import mteb_tasks
from bench.errors import InputError
from bench.tasks import load_task, task_registry
from bench.types import TaskSpec
from tests.conftest import REPO


def test_an_mteb_task_converts_with_mtebs_text_rules():
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask

    task = MockRetrievalTask()
    task.load_data()
    data = mteb_tasks.task_data_from_mteb(task, TaskSpec(name="Mock", source="mteb", path=Path(".")))
    raw = task.dataset["default"]["test"]
    first = raw["corpus"]["id"][0]
    assert data.corpus[first] == (raw["corpus"]["title"][0] + " " + raw["corpus"]["text"][0]).strip()
    assert data.qrels == {q: r for q, r in raw["relevant_docs"].items()} and sorted(data.queries) == ["q1", "q2"]
    assert data.ignore_identical_ids is False


def test_missing_split_or_subset_is_named():
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask

    task = MockRetrievalTask()
    task.load_data()
    with pytest.raises(InputError, match="has no split 'dev'"):
        mteb_tasks.task_data_from_mteb(task, TaskSpec(name="Mock", source="mteb", path=Path("."), split="dev"))
    with pytest.raises(InputError, match="has no subset 'fr'"):
        mteb_tasks.task_data_from_mteb(task, TaskSpec(name="Mock", source="mteb", path=Path("."), subset="fr"))


def test_without_the_hub_an_mteb_task_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = task_registry(REPO / "tasks").get("mteb:ArguAna")
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"MTEB task ArguAna \(dataset mteb/arguana at revision c22ab2a5"):
        load_task(spec)
    assert time.monotonic() - t0 < 20


def test_unreachable_hub_switches_the_libraries_offline(monkeypatch):
    for name in mteb_tasks.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(mteb_tasks, "hub_reachable", lambda timeout=3.0: False)
    assert mteb_tasks.ensure_offline_when_unreachable() is True
    import os

    assert all(os.environ[name] == "1" for name in mteb_tasks.OFFLINE_VARIABLES)


def test_unknown_mteb_task_gets_mtebs_suggestion(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="Did you mean: 'ArguAna'"):
        load_task(task_registry(REPO / "tasks").get("mteb:ArguAnna"))


def test_non_retrieval_tasks_are_refused():
    with pytest.raises(InputError, match="only retrieval tasks run here"):
        mteb_tasks.get_mteb_task("Banking77Classification")
