"""The catalogue of bad inputs: each gets one clear line naming the file and line or the value,
its documented exit code, and leaves finished results intact."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from bench.cli import main
from bench.testing import HashingEncoder


def _task(tasks_dir, name):
    return tasks_dir / "data" / "Toy" / name


def _append(path, text):
    path.write_bytes(path.read_bytes() + text)


def _replace_line(path, index, text: bytes):
    lines = path.read_bytes().splitlines(keepends=True)
    lines[index] = text
    path.write_bytes(b"".join(lines))


CASES = {
    "malformed JSON line": (lambda t, s: _replace_line(_task(t, "corpus.jsonl"), 1, b'{"_id": "d2", "text": }\n'),
                            2, "corpus.jsonl:2: malformed JSON"),
    "invalid UTF-8": (lambda t, s: _replace_line(_task(t, "queries.jsonl"), 2, b'{"_id": "q3", "text": "bad \xff"}\n'),
                      2, "queries.jsonl:3: not valid UTF-8"),
    "empty document text": (lambda t, s: _append(_task(t, "corpus.jsonl"), b'{"_id": "d9", "title": "", "text": " "}\n'),
                            2, "corpus.jsonl:7: empty text for id 'd9'"),
    "empty query text": (lambda t, s: _append(_task(t, "queries.jsonl"), b'{"_id": "q9", "text": ""}\n'),
                         2, "queries.jsonl:5: empty text for id 'q9'"),
    "duplicate id": (lambda t, s: _append(_task(t, "queries.jsonl"), b'{"_id": "q1", "text": "again"}\n'),
                     2, "queries.jsonl:5: duplicate id 'q1'"),
    "qrels naming an unknown query": (lambda t, s: _append(_task(t, "qrels/test.tsv"), b"q99\td1\t1\n"),
                                      2, "test.tsv:8: query id 'q99' is not in queries.jsonl"),
    "qrels naming an unknown document": (lambda t, s: _append(_task(t, "qrels/test.tsv"), b"q1\td99\t1\n"),
                                         2, "test.tsv:8: document id 'd99' is not in corpus.jsonl"),
    "non-integer relevance": (lambda t, s: _append(_task(t, "qrels/test.tsv"), b"q1\td2\t0.5\n"),
                              2, "test.tsv:8: relevance must be an integer, got '0.5'"),
    "negative relevance": (lambda t, s: _append(_task(t, "qrels/test.tsv"), b"q1\td2\t-1\n"),
                           2, "test.tsv:8: relevance must not be negative, got -1"),
    "no judged queries": (lambda t, s: _task(t, "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\n"),
                          2, "task Toy: split 'test' has no judged queries"),
    "missing split": (lambda t, s: (t / "retrieval" / "Toy.yaml").write_text(
        (t / "retrieval" / "Toy.yaml").read_text().replace("split: test", "split: dev")), 2, "dev.tsv: file not found"),
    "YAML key typo": (lambda t, s: s.write_text(s.read_text() + "rescore_multipler: 2\n"),
                      2, "unknown key 'rescore_multipler' (did you mean 'rescore_multiplier' or 'rescore_multipliers'?)"),
    "YAML value typo": (lambda t, s: s.write_text(s.read_text().replace("binary-rescore]", "binary-rescor]")),
                        2, "unknown precision 'binary-rescor' (did you mean 'binary-rescore'"),
    "unknown model": (lambda t, s: s.write_text(s.read_text().replace("models: [toy]", "models: [tiy]")),
                      2, "unknown model 'tiy' (did you mean 'toy'?)"),
    "unknown backend": (lambda t, s: s.write_text(s.read_text().replace("[hashing]", "[hashnig]")),
                        2, "unknown backend 'hashnig' (did you mean 'hashing'?)"),
    "dimension above the model's": (lambda t, s: s.write_text(s.read_text().replace("[32, 16, 8]", "[33]")),
                                    2, "dimension 33 is outside 1..32 for model toy"),
    "dimension below 1": (lambda t, s: s.write_text(s.read_text().replace("[32, 16, 8]", "[0]")),
                          2, "dimension 0 is outside 1..32 for model toy"),
    "missing task file": (lambda t, s: _task(t, "corpus.jsonl").unlink(), 2, "corpus.jsonl: file not found"),
}  # fmt: skip


@pytest.fixture
def finished(toy_sweep, toy_tasks_dir, tmp_path, capsys):
    """A finished run in the results folder, to show bad input never touches it."""
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "done"]) == 0
    capsys.readouterr()
    folder = tmp_path / "results" / "done"
    return folder, {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def _intact(finished) -> bool:
    folder, before = finished
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}
    return after == before and sorted(p.name for p in folder.parent.iterdir()) == ["done"]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, toy_sweep, toy_tasks_dir, finished, capsys):
    damage, code, message = CASES[case]
    damage(toy_tasks_dir, toy_sweep)
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir)]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert _intact(finished)


@pytest.mark.parametrize("output,code,message", [
    (lambda n, d: np.where(np.arange(d) == 3, np.inf, 0.0) * np.ones((n, 1)), 3, "NaN or Inf"),
    (lambda n, d: np.zeros((n + 1, d)), 3, "returned shape"),
    (lambda n, d: np.zeros((n, d - 2)), 3, "width 30, expected 32"),
])  # fmt: skip
def test_bad_vectors_from_a_backend(output, code, message, toy_sweep, toy_tasks_dir, finished, capsys, monkeypatch):
    monkeypatch.setattr(HashingEncoder, "encode", lambda self, texts, role: output(len(texts), 32))
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--cache-dir", str(toy_tasks_dir / "c2")]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert _intact(finished)


def test_byte_order_mark_is_accepted_with_a_warning(toy_sweep, toy_tasks_dir, caplog):
    path = _task(toy_tasks_dir, "corpus.jsonl")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir)]) == 0
    assert "byte-order mark" in caplog.text and "corpus.jsonl" in caplog.text


def test_output_folder_that_cannot_be_created(toy_sweep, toy_tasks_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--output-dir", str(blocker)]) == 2
    assert "cannot create the run directory" in capsys.readouterr().err


def test_full_disk_while_writing_keeps_finished_cells(toy_sweep, toy_tasks_dir, tmp_path, capsys, monkeypatch):
    import bench.cache as cache

    real, calls = cache.os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 8:  # some cells are finished by then
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(cache.os, "replace", replace)
    code = main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "full"])
    err = capsys.readouterr().err
    assert code == 4 and "No space left on device" in err and err.count("\n") == 1
    cells = list((tmp_path / "results" / "full" / "cells").glob("*.json"))
    assert cells and all(json.loads(p.read_text())["metrics"] for p in cells)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(cache.os, "replace", real)
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "full"]) == 0


def test_corrupted_cache_file_is_detected_discarded_and_recomputed(toy_sweep, toy_tasks_dir, tmp_path, caplog):
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "a"]) == 0
    chunk = next((tmp_path / "cache").rglob("chunk-*.npz"))
    chunk.write_bytes(chunk.read_bytes()[:-40] + b"\0" * 40)
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "b"]) == 0
    assert "corrupted" in caplog.text
    a = (tmp_path / "results" / "a" / "rows.csv").read_text().splitlines()[1:]
    b = (tmp_path / "results" / "b" / "rows.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:12] for r in a] == [r.split(",")[:12] for r in b]


def test_results_from_a_newer_schema_are_refused(finished, capsys):
    folder, _ = finished
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(folder)]) == 2
    assert "schema version 99 is newer than this bench understands (1)" in capsys.readouterr().err
