"""The chunker of derived chunked tasks and the answer-span labelling, on hand-made texts whose
chunks and labels are worked out by hand, and on the bundled COVID-QA against counts computed here
from the raw JSON."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from bench import chunking
from bench.chunked import derive_squad
from bench.errors import InputError
from tests.conftest import REPO

COVIDQA = REPO / "tasks" / "data" / "covidqa" / "200423_covidQA.json.gz"


def _texts(text: str, max_words: int) -> list[str]:
    return [text[s.start : s.end] for s in chunking.chunk_spans(text, max_words)]


def test_sentences_end_at_terminal_punctuation_before_whitespace_and_at_line_breaks():
    text = 'One two. "Three?" Four e.g.five\nSix (seven!) eight'
    assert [text[s.start : s.end] for s in chunking.sentences(text)] == [
        "One two.", '"Three?"', "Four e.g.five", "Six (seven!)", "eight"]  # fmt: skip


def test_chunks_pack_whole_sentences_within_the_word_budget():
    text = "a b c. d e. f g h i. j."
    assert _texts(text, 5) == ["a b c. d e.", "f g h i. j."]
    assert _texts(text, 4) == ["a b c.", "d e.", "f g h i.", "j."]
    assert _texts(text, 100) == [text]


def test_a_sentence_over_the_budget_is_cut_into_budget_sized_pieces():
    text = "w1 w2 w3 w4 w5 w6 w7. short one."
    assert _texts(text, 3) == ["w1 w2 w3", "w4 w5 w6", "w7. short one."]
    assert _texts(text, 7) == ["w1 w2 w3 w4 w5 w6 w7.", "short one."]


def test_chunks_cover_every_non_space_character_once_in_order():
    text = "  Alpha beta.\n\nGamma delta epsilon! Zeta?  Eta theta iota kappa.  "
    spans = chunking.chunk_spans(text, 3)
    covered = "".join(text[s.start : s.end] for s in spans)
    assert covered.replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def test_chunker_identity_names_rule_version_and_budget():
    assert chunking.describe(100) == f"sentence-words/v{chunking.VERSION}/100"
    with pytest.raises(ValueError):
        chunking.chunk_spans("a b", 0)


def test_an_answer_is_labelled_with_every_chunk_it_touches():
    text = "a b c. d e. f g h."
    spans = chunking.chunk_spans(text, 3)  # "a b c." | "d e." | "f g h."
    at = text.index("c. d")
    assert chunking.labels(spans, chunking.answer_core(text, at, "c. d")) == [0, 1]
    assert chunking.labels(spans, chunking.answer_core(text, text.index("g"), "g")) == [2]
    # the answer's own surrounding whitespace is set aside: " d e. " touches chunk 1 only
    assert chunking.labels(spans, chunking.answer_core(text, text.index(" d"), " d e. ")) == [1]
    assert chunking.answer_core(text, 0, "   ") is None


def test_an_offset_that_misses_is_moved_to_the_nearest_occurrence_within_the_slack():
    text = "x answer y answer z"
    assert chunking.locate(text, 2, "answer", 16) == 2
    assert chunking.locate(text, 4, "answer", 16) == 2  # off by 2: the nearest occurrence
    assert chunking.locate(text, 10, "answer", 16) == 11
    assert chunking.locate(text, 2, "absent", 16) is None
    assert chunking.locate("." * 40 + "answer", 0, "answer", 16) is None  # too far


def _raw_covidqa() -> dict:
    with gzip.open(COVIDQA, "rb") as handle:
        raw = handle.read()
    assert hashlib.sha256(raw).hexdigest() == "ab310b4e39f726e087c8fa3d1787c73771dacddc584977204ebe3cc889ee1264"
    return json.loads(raw)


def test_bundled_covidqa_is_the_documented_file_and_derives_as_documented():
    raw = _raw_covidqa()
    questions = [q for a in raw["data"] for q in a["paragraphs"][0]["qas"]]
    exact = sum(a["paragraphs"][0]["context"][q["answers"][0]["answer_start"]:].startswith(q["answers"][0]["text"])
                for a in raw["data"] for q in a["paragraphs"][0]["qas"])  # fmt: skip
    documents, queries, qrels, report = derive_squad(COVIDQA, 100)
    assert (len(raw["data"]), len(questions), exact) == (98, 1380, 1146)
    assert (report.questions, report.kept, sum(report.dropped.values())) == (1380, 1380, 0)
    assert sum(report.moved.values()) == 1380 - exact
    assert len(documents) == 98 and len(queries) == len(qrels) == 1380
    assert sum(len(c) for c in documents.values()) == 4128
    assert report.crossing == sum(len(r) > 1 for r in qrels.values()) == 57


def test_every_covidqa_judgement_holds_its_answer_text():
    raw = _raw_covidqa()
    documents, _, qrels, _ = derive_squad(COVIDQA, 100)
    chunk_text = {c: t for chunks in documents.values() for c, t in chunks}
    for article in raw["data"]:
        for qa in article["paragraphs"][0]["qas"]:
            answer = qa["answers"][0]["text"].strip()
            joined = " ".join(chunk_text[c] for c in sorted(qrels[str(qa["id"])], key=lambda c: int(c.rsplit("_", 1)[1])))
            if len(qrels[str(qa["id"])]) == 1:
                assert answer in joined, qa["id"]
            else:  # across a boundary: its words are in the judged chunks, in order
                assert answer.split()[0] in joined and answer.split()[-1] in joined, qa["id"]


def _squad(tmp_path, qas, context="Alpha beta. Gamma delta."):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "document_id": 7, "qas": qas}]}]}))
    return path


def test_questions_that_cannot_be_placed_are_dropped_and_counted(tmp_path):
    qas = [
        {"id": 1, "question": "q1", "answers": [{"text": "Gamma", "answer_start": 12}]},
        {"id": 2, "question": "q2", "answers": [{"text": "nowhere", "answer_start": 0}]},
        {"id": 3, "question": "q3", "answers": [{"text": "  ", "answer_start": 0}]},
        {"id": 4, "question": "q4", "answers": [], "is_impossible": True},
        {"id": 5, "question": "q5", "answers": [{"text": "Gamma", "answer_start": 13}]},
    ]
    documents, queries, qrels, report = derive_squad(_squad(tmp_path, qas), 2)
    assert documents == {"7": [("7_0", "Alpha beta."), ("7_1", "Gamma delta.")]}
    assert qrels == {"1": {"7_1": 1}, "5": {"7_1": 1}}
    assert dict(report.dropped) == {"answer text not within 16 characters of its offset": 1, "blank answer": 1,
                                    "unanswerable": 1}  # fmt: skip
    assert dict(report.moved) == {1: 1}
    assert "2 of 5 questions kept" in report.summary("T")


def test_malformed_squad_input_is_one_line_naming_the_place(tmp_path):
    bad = _squad(tmp_path, [{"id": 1, "question": "q", "answers": [{"text": "Alpha", "answer_start": "0"}]}])
    with pytest.raises(InputError, match=r"squad.json: data\[0\].paragraphs\[0\].qas\[0\].answers\[0\].answer_start: "
                                         "expected int, got str"):  # fmt: skip
        derive_squad(bad, 10)
    (tmp_path / "broken.json").write_text('{"data": [\n{"paragraphs": }]}')
    with pytest.raises(InputError, match=r"broken.json:2: malformed JSON"):
        derive_squad(tmp_path / "broken.json", 10)
