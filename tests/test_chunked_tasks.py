"""The chunked task kind: a local folder (every bad line one error naming file:line), ConTEB rows
shaped like the hub's, the offline failure of hub tasks, smoke subsets that keep whole documents,
and the task digest that holds the documents and the chunker."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.conteb import load_conteb, task_data_from_conteb
from bench.errors import InputError
from bench.planning import task_digest
from bench.taskdata import subset
from bench.tasks import load_task, read_task_spec, task_registry
from bench.testing import write_chunked_task
from bench.types import TaskSpec

DOCS = {
    "d1": [("d1_0", "Cats purr when content."), ("d1_1", "They also sleep a lot."), ("d1_2", "It is their hobby.")],
    "d2": [("d2_0", "Dogs bark at strangers."), ("d2_1", "They guard the house.")],
    "d3": [("d3_0", "Birds sing at dawn.")],
}
QUERIES = {"q1": "what do cats do", "q2": "who guards the house", "q3": "unjudged"}
QRELS = {"q1": {"d1_1": 1, "d1_2": 1}, "q2": {"d2_1": 1}}


@pytest.fixture
def chunked(tmp_path: Path) -> Path:
    return write_chunked_task(tmp_path / "tasks", "Chunky", DOCS, QUERIES, QRELS)


def test_a_chunked_folder_loads_documents_as_ordered_chunk_lists(chunked):
    spec = read_task_spec(chunked)
    data = load_task(spec)
    assert spec.chunked and spec.chunker == ""
    assert data.documents == {d: tuple(c for c, _ in chunks) for d, chunks in DOCS.items()}
    assert list(data.corpus) == sorted((c for chunks in DOCS.values() for c, _ in chunks), reverse=True)
    assert set(data.queries) == {"q1", "q2"} and data.qrels["q1"] == {"d1_1": 1, "d1_2": 1}


def _documents_line(chunked: Path, line: str, lineno: int = 2) -> Path:
    path = chunked.parent.parent / "data" / "Chunky" / "documents.jsonl"
    lines = path.read_text().splitlines()
    lines[lineno - 1] = line
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, message", [
    ('{"_id": "d2", "chunks": []}', r"documents.jsonl:2: document 'd2' has an empty chunk list"),
    ('{"_id": "d2", "chunks": [{"_id": "x", "text": "  "}]}', r"documents.jsonl:2: chunk 'x' has empty text"),
    ('{"_id": "d2", "chunks": [{"_id": "d1_0", "text": "again"}]}',
     r"documents.jsonl:2: duplicate chunk id 'd1_0' \(first at .*documents.jsonl:1\)"),
    ('{"_id": "d1", "chunks": [{"_id": "y", "text": "t"}]}', r"documents.jsonl:2: duplicate document id 'd1'"),
    ('{"_id": "d2", "chunks": "text"}', r"documents.jsonl:2: document 'd2': 'chunks' must be a list of chunks"),
    ('{"_id": "d2", "chunks": [{"text": "t"}]}', r"documents.jsonl:2: chunk 0 must be an object with '_id' and 'text'"),
    ('{"_id": "d2", "chunks": [{"_id": "a\\tb", "text": "t"}]}', r"documents.jsonl:2: chunk 0: '_id' .* holds a tab"),
    ('{"_id": "d2", "chunks": [', r"documents.jsonl:2: malformed JSON"),
])  # fmt: skip
def test_bad_documents_fail_with_one_line_naming_file_and_line(chunked, line, message):
    _documents_line(chunked, line)
    with pytest.raises(InputError, match=message) as err:
        load_task(read_task_spec(chunked))
    assert "\n" not in str(err.value)


def test_a_judgement_of_a_chunk_that_does_not_exist_names_the_qrels_line(chunked):
    qrels = chunked.parent.parent / "data" / "Chunky" / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "q2\td9_0\t1\n")
    with pytest.raises(InputError, match=r"test.tsv:5: chunk id 'd9_0' does not exist in documents.jsonl"):
        load_task(read_task_spec(chunked))


def test_the_task_type_must_fit_its_source(chunked, tmp_path):
    text = chunked.read_text().replace("type: chunked-retrieval", "type: retrieval")
    chunked.write_text(text)
    with pytest.raises(InputError, match=r"Chunky.yaml:\d+: a task of source chunked has type chunked-retrieval"):
        read_task_spec(chunked)
    chunked.write_text(text.replace("type: retrieval", "type: chunked-retrieval") + "chunk_words: 10\n")
    with pytest.raises(InputError, match="key 'chunk_words' is for tasks of source squad-chunked only"):
        read_task_spec(chunked)


def test_a_smoke_subset_keeps_whole_documents(chunked):
    data = load_task(read_task_spec(chunked))
    small = subset(data, 1)  # q1 judges d1's chunks; then whole documents until 10 more chunks
    assert small.documents["d1"] == data.documents["d1"]
    assert all(set(small.documents[d]) <= set(small.corpus) for d in small.documents)
    assert set(small.corpus) == {c for chunks in small.documents.values() for c in chunks}


def test_the_task_digest_holds_the_documents_and_the_chunker(chunked):
    spec = read_task_spec(chunked)
    data = load_task(spec)
    regrouped = replace(data, documents={"d1": ("d1_0", "d1_1"), "d2": ("d1_2", "d2_0", "d2_1"), "d3": ("d3_0",)})
    reordered = replace(data, documents={**data.documents, "d1": ("d1_1", "d1_0", "d1_2")})
    digests = {task_digest(spec, data), task_digest(spec, regrouped), task_digest(spec, reordered),
               task_digest(replace(spec, chunker="sentence-words/v2/100"), data)}  # fmt: skip
    assert len(digests) == 4


def test_the_bundled_covidqa_task_is_chunked_with_its_chunker_in_its_spec():
    spec = task_registry(Path(__file__).resolve().parent.parent / "tasks").get("COVID-QA")
    assert spec.chunked and spec.chunk_words == 100
    assert spec.chunker == "sentence-words/v1/100;answers/v1/slack16"


# --------------------------------------------------------------------------- ConTEB on the hub

CONTEB = TaskSpec(name="covid-qa", source="conteb", path=Path("."), split="test", dataset="illuin-conteb/covid-qa",
                  revision="0" * 40, chunked=True)  # fmt: skip
HUB_DOCUMENTS = [  # rows as ConTEB's "documents" configuration holds them (any order)
    {"chunk_id": "doc_a_1", "chunk": "second chunk of a"}, {"chunk_id": "doc_a_0", "chunk": "first chunk of a"},
    {"chunk_id": "7_0", "chunk": "only chunk of 7"},
]  # fmt: skip


def test_conteb_rows_become_documents_in_position_order_and_chunk_judgements():
    queries = [{"query": "about a", "chunk_id": "doc_a_1"}, {"query": "about both", "chunk_ids": ["doc_a_0", "7_0"]}]
    data = task_data_from_conteb(CONTEB, HUB_DOCUMENTS, queries)
    assert data.documents == {"7": ("7_0",), "doc_a": ("doc_a_0", "doc_a_1")}
    assert data.queries == {"q0": "about a", "q1": "about both"}
    assert data.qrels == {"q0": {"doc_a_1": 1}, "q1": {"doc_a_0": 1, "7_0": 1}}


@pytest.mark.parametrize("queries, message", [
    ([{"query": "x", "chunk_id": "doc_a_9"}], r"ConTEB covid-qa queries row 0: chunk id 'doc_a_9' does not exist"),
    ([{"query": "x"}], r"queries row 0: expected a string 'query' and a 'chunk_id'"),
])  # fmt: skip
def test_bad_conteb_queries_fail_with_one_line(queries, message):
    with pytest.raises(InputError, match=message):
        task_data_from_conteb(CONTEB, HUB_DOCUMENTS, queries)


def test_bad_conteb_documents_fail_with_one_line():
    with pytest.raises(InputError, match=r"documents row 1: chunk id 'nochunk' is not <document>_<position>"):
        task_data_from_conteb(CONTEB, [HUB_DOCUMENTS[0], {"chunk_id": "nochunk", "chunk": "t"}], [])
    with pytest.raises(InputError, match=r"documents row 1: duplicate chunk id 'doc_a_1'"):
        task_data_from_conteb(CONTEB, [HUB_DOCUMENTS[0], HUB_DOCUMENTS[0]], [])
    with pytest.raises(InputError, match=r"documents: no documents"):
        task_data_from_conteb(CONTEB, [], [])


def test_conteb_fails_fast_offline_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError) as err:
        load_conteb(CONTEB)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"ConTEB task covid-qa (dataset illuin-conteb/covid-qa at revision {'0' * 40}): "
                           "the Hugging Face hub is unreachable and")  # fmt: skip


def test_a_conteb_task_yaml_needs_its_dataset_and_revision(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: ConTEB-covid\ntype: chunked-retrieval\nsource: conteb\ndataset: illuin-conteb/covid-qa\n")
    with pytest.raises(InputError, match="a task of source conteb needs 'revision'"):
        read_task_spec(path)
    path.write_text(path.read_text() + f"revision: {'a' * 40}\nsplit: test\n")
    spec = read_task_spec(path)
    assert (spec.dataset, spec.chunked) == ("illuin-conteb/covid-qa", True)
    assert json.dumps(spec.revision) == json.dumps("a" * 40)
