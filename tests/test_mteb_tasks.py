"""MTEB tasks through ``mteb:<Task>``: metadata, expansion into (split, subset) specs, the text
rules checked against mteb's own functions on raw data, and the tasks bench refuses."""

import contextlib
import time
from pathlib import Path

import pytest

from bench import mteb_tasks
from bench.errors import InputError
from bench.planning import expand_tasks
from bench.taskdata import document_text, query_text
from bench.tasks import load_task, task_registry
from bench.types import TaskSpec
from tests.conftest import REPO
from tests.mteb_offline import MULTI, OfflineSpec, SplitData, keyword_split, offline_task, register


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


def test_document_and_query_texts_equal_mtebs_on_raw_rows():
    """bench's text rules against mteb's ``_retrieval_texts`` (what its encoders are given)."""
    from datasets import Dataset
    from mteb._create_dataloaders import _retrieval_texts
    from mteb.types import PromptType

    docs = [("", "  plain body "), ("T", " body "), ("  ", "ws title"), ("Title", "")]
    corpus = Dataset.from_list([{"id": str(i), "title": t, "text": x} for i, (t, x) in enumerate(docs)])
    assert [document_text(t, x) for t, x in docs] == _retrieval_texts(corpus, PromptType.document)
    rows = [("q a", "Do X."), ("q b", ""), (" q c ", None)]  # None: mteb's text rule appends nothing
    queries = Dataset.from_list([{"id": str(i), "text": t, "instruction": n} for i, (t, n) in enumerate(rows)])
    assert [query_text(t, n) for t, n in rows] == _retrieval_texts(queries, PromptType.query) == [
        "q a Do X.", "q b ", " q c "]  # fmt: skip
    for turns in (["hi", "find cats"], [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]):
        for instruction in (None, "Be brief."):
            row = {"id": "c", "text": turns} | ({"instruction": instruction} if instruction else {})
            with pytest.warns(UserWarning) if isinstance(turns[0], str) else contextlib.nullcontext():
                (expected,) = _retrieval_texts(Dataset.from_list([row]), PromptType.query)
            assert query_text(turns, instruction) == expected


def test_a_none_instruction_is_never_appended(monkeypatch):
    split = keyword_split(3, instructions=True)
    none = SplitData(split.corpus, split.queries, split.qrels, {**split.instructions, "q1": None})
    task = offline_task(OfflineSpec(name="OfflineNoneInstruction", data={"default": {"test": none}}))
    register(monkeypatch, task)
    (spec,) = task_registry(REPO / "tasks").expand("mteb:OfflineNoneInstruction").values()
    data = load_task(spec)
    assert data.queries["q1"] == "find items 1" and data.queries["q0"] == f"find items 0 {split.instructions['q0']}"


def test_an_mteb_name_expands_to_every_split_and_subset_with_mtebs_metadata(monkeypatch):
    register(monkeypatch, offline_task(MULTI))
    registry = task_registry(REPO / "tasks")
    specs = registry.expand("mteb:OfflineMultiSubset")
    assert list(specs) == ["mteb:OfflineMultiSubset/en@dev", "mteb:OfflineMultiSubset/de@dev",
                           "mteb:OfflineMultiSubset/en@test", "mteb:OfflineMultiSubset/de@test"]  # fmt: skip
    spec = specs["mteb:OfflineMultiSubset/de@test"]
    assert (spec.name, spec.split, spec.subset, spec.main_score, spec.revision, spec.languages) == (
        "OfflineMultiSubset", "test", "de", "ndcg_at_1", "rev-offline-1", ("deu-Latn",))
    assert list(registry.expand("mteb:OfflineMultiSubset/de")) == ["mteb:OfflineMultiSubset/de@dev",
                                                                   "mteb:OfflineMultiSubset/de@test"]  # fmt: skip
    assert list(registry.expand("mteb:OfflineMultiSubset@dev")) == ["mteb:OfflineMultiSubset/en@dev",
                                                                    "mteb:OfflineMultiSubset/de@dev"]  # fmt: skip
    assert list(registry.expand("mteb:OfflineMultiSubset/en@test")) == ["mteb:OfflineMultiSubset/en@test"]
    with pytest.raises(InputError, match=r"MTEB task OfflineMultiSubset has no subset 'fr'; it has \['en', 'de'\]"):
        registry.expand("mteb:OfflineMultiSubset/fr")


def test_the_same_split_and_subset_twice_in_a_sweep_is_refused(monkeypatch):
    register(monkeypatch, offline_task(MULTI))
    with pytest.raises(InputError, match=r"tasks 'mteb:OfflineMultiSubset' and 'mteb:OfflineMultiSubset/de@test' "
                                         r"both evaluate OfflineMultiSubset split 'test' subset 'de'"):  # fmt: skip
        expand_tasks(("mteb:OfflineMultiSubset", "mteb:OfflineMultiSubset/de@test"), REPO / "tasks")


def test_a_declared_mteb_task_may_not_contradict_mtebs_metadata(tmp_path, monkeypatch):
    register(monkeypatch, offline_task(MULTI))
    (tmp_path / "retrieval").mkdir()
    (tmp_path / "retrieval" / "m.yaml").write_text("name: OfflineMultiSubset\nsource: mteb\nmain_score: ndcg_at_10\n")
    with pytest.raises(InputError, match=r"m\.yaml: main_score 'ndcg_at_10' differs from MTEB's metadata of "
                                         r"OfflineMultiSubset \('ndcg_at_1'\)"):  # fmt: skip
        task_registry(tmp_path).expand("OfflineMultiSubset")
    languages = r"languages \['eng-Latn'\] differ from MTEB's metadata of OfflineMultiSubset \(\['deu-Latn'\]\)"
    for extra, message in (("subset: de\nlanguages: [eng-Latn]\n", languages),
                           ("ignore_identical_ids: true\n", "ignore_identical_ids true differs from MTEB's metadata")):
        (tmp_path / "retrieval" / "m.yaml").write_text("name: OfflineMultiSubset\nsource: mteb\n" + extra)
        with pytest.raises(InputError, match=message):  # was overridden without a word
            task_registry(tmp_path).expand("OfflineMultiSubset")
    (tmp_path / "retrieval" / "m.yaml").write_text("name: OfflineMultiSubset\nsource: mteb\nsubset: de\n"
                                                   "languages: [deu-Latn]\n")  # fmt: skip
    assert [s.languages for s in task_registry(tmp_path).expand("OfflineMultiSubset").values()] == [("deu-Latn",)] * 2
    # an explicit false against MTEB's true is a contradiction too; left out, MTEB's rule is taken
    register(monkeypatch, offline_task(OfflineSpec(name="OfflineIdentical", data={"default": {"test": keyword_split(3, False)}},
                                                   ignore_identical_ids=True)))  # fmt: skip
    (tmp_path / "retrieval" / "m.yaml").write_text("name: OfflineIdentical\nsource: mteb\nignore_identical_ids: false\n")
    with pytest.raises(InputError, match=r"ignore_identical_ids false differs from MTEB's metadata of OfflineIdentical \(true\)"):
        task_registry(tmp_path).expand("OfflineIdentical")
    for declaration in ("name: OfflineIdentical\nsource: mteb\n", "name: OfflineIdentical\nsource: mteb\nignore_identical_ids: true\n"):
        (tmp_path / "retrieval" / "m.yaml").write_text(declaration)
        assert [s.ignore_identical_ids for s in task_registry(tmp_path).expand("OfflineIdentical").values()] == [True]
    assert [s.ignore_identical_ids for s in task_registry(REPO / "tasks").expand("mteb:OfflineIdentical").values()] == [True]


def test_bundled_references_whose_main_score_is_not_ndcg_at_10_get_their_tasks_main_score():
    """The 18 bundled reference rows whose published main score is not their nDCG@10 are tasks
    whose MTEB metadata names another main score (LEMBPasskeyRetrieval, StatcanDialogue...)."""
    from bench.reproduce import load_suite, read_reference, task_name_for

    registry, checked = task_registry(REPO / "tasks"), 0
    for size in ("0.6b", "4b"):
        suite = load_suite(f"pplx-embed-v1-{size}", REPO / "tasks")
        for row in read_reference(suite["reference"], suite["reference_model"], None):
            if row["main_score"] != float(row["ndcg_at_10"]):
                (spec,) = registry.expand(task_name_for(row, REPO / "tasks")).values()
                assert (spec.split, spec.subset) == (row["split"], row["subset"])
                assert spec.main_score in ("ndcg_at_1", "recall_at_10"), row["task"]
                checked += 1
    assert checked == 18


def test_real_registry_metadata_needs_no_hub():
    registry = task_registry(REPO / "tasks")
    specs = registry.expand("mteb:StatcanDialogueDatasetRetrieval")
    assert len(specs) == 4 and {s.main_score for s in specs.values()} == {"recall_at_10"}
    passkey = registry.expand("mteb:LEMBPasskeyRetrieval")
    assert len(passkey) == 8 and all(s.main_score == "ndcg_at_1" and s.revision for s in passkey.values())


@pytest.mark.parametrize("name,message", [
    ("SciDocsRR", "is a Reranking task: MTEB re-ranks its given candidates; bench runs full-corpus search only"),
    ("Core17InstructionRetrieval", "is an InstructionReranking task: MTEB re-ranks"),
    ("InstructIR", "is scored on 'robustness_at_10', which bench does not compute"),
    ("LIMITSmallRetrieval", "is scored on 'recall_at_2', which bench does not compute"),
    ("CQADupstackRetrieval", "is an aggregate of several tasks; only single retrieval tasks run here"),
    ("Banking77Classification", "is a Classification task; only single retrieval tasks run here"),
])  # fmt: skip
def test_tasks_bench_would_score_differently_are_refused_in_one_line(name, message):
    with pytest.raises(InputError, match=message) as err:
        task_registry(REPO / "tasks").expand(f"mteb:{name}")
    assert "\n" not in str(err.value)


def test_top_ranked_candidates_are_refused_not_searched_over_the_full_corpus(monkeypatch):
    split = keyword_split(5, instructions=False)
    ranked = SplitData(split.corpus, split.queries, split.qrels, top_ranked={"q0": ["d1", "d2"]})
    register(monkeypatch, offline_task(OfflineSpec(name="OfflineRanked", data={"default": {"test": ranked}})))
    (spec,) = task_registry(REPO / "tasks").expand("mteb:OfflineRanked").values()
    with pytest.raises(InputError, match=r"OfflineRanked \(default, test\) re-ranks given top_ranked candidates"):
        load_task(spec)


def test_without_the_hub_an_mteb_task_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (spec,) = task_registry(REPO / "tasks").expand("mteb:ArguAna").values()
    assert (spec.split, spec.subset, spec.main_score) == ("test", "default", "ndcg_at_10")
    assert spec.revision.startswith("c22ab2a5") and spec.ignore_identical_ids is True
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
        task_registry(REPO / "tasks").expand("mteb:ArguAnna")


@pytest.mark.parametrize("part", ["corpus", "queries"])
def test_an_id_twice_in_an_mteb_task_is_refused(monkeypatch, part):
    """MTEB keeps both rows of a repeated id; a mapping kept the last text alone (nDCG@10 0.687
    against mteb's 0.877 on a 4-document task), so bench refuses instead of picking one."""
    from datasets import Dataset

    task = offline_task(OfflineSpec(name="OfflineDuplicateId", data={"default": {"test": keyword_split(3, False)}}))
    real = task.load_data

    def load_data(self, *args, **kwargs):
        real(self, *args, **kwargs)
        rows = list(self.dataset["default"]["test"][part])
        self.dataset["default"]["test"][part] = Dataset.from_list(rows + [dict(rows[0], text="another text")])

    monkeypatch.setattr(task, "load_data", load_data)
    register(monkeypatch, task)
    (spec,) = task_registry(REPO / "tasks").expand("mteb:OfflineDuplicateId").values()
    with pytest.raises(InputError, match=rf"MTEB task OfflineDuplicateId \(default, test\): its {part} has the id '[^']+' twice"):
        load_task(spec)
