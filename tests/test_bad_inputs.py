"""The catalogue of bad inputs. Each case gets one line naming the file and line, the flag or the
offending value, its documented exit code, and leaves everything as it was: the finished run in
the same output folder, sentinel files around it and the embedding cache are byte for byte
intact, and no run folder is left behind."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.testing import HashingEncoder, write_beir_task, write_models
from tests.conftest import TOY_MODEL

# --------------------------------------------------------------------------- the world around a run


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A finished run in results/, sentinel files beside it, above it and in the cache (made once)."""
    from tests.conftest import TOY_CORPUS, TOY_QRELS, TOY_QUERIES

    root = tmp_path_factory.mktemp("world")
    tasks = root / "tasks"
    write_beir_task(tasks, "Toy", TOY_CORPUS, TOY_QUERIES, TOY_QRELS)
    write_models(tasks, {"toy": TOY_MODEL})
    (root / "sweep.yaml").write_text(
        "name: toy\nmodels: [toy]\ntasks: [Toy]\nbackends: [hashing]\n"
        "dims: [32, 16, 8]\nprecisions: [float32, float16, int8, int8-tanh, binary, binary-rescore]\n"
        f"top_k: 10\noutput_dir: {root / 'results'}\ncache_dir: {root / 'cache'}\nbootstrap_resamples: 50\n",
        encoding="utf-8",
    )  # fmt: skip
    assert main(["run", str(root / "sweep.yaml"), "--tasks-dir", str(tasks), "--run-id", "done"]) == 0
    for place in (root, root / "results", root / "cache", root / "results" / "done"):
        (place / "sentinel.txt").write_text(f"keep me: {place.name}")
    return root


@pytest.fixture
def world(template, tmp_path, capsys):
    """A copy of the template world in this test's own folder."""
    import shutil

    capsys.readouterr()
    root = tmp_path / "w"
    shutil.copytree(template, root, symlinks=True)
    sweep = root / "sweep.yaml"
    sweep.write_text(sweep.read_text().replace(str(template), str(root)))
    return {"tmp": root, "tasks": root / "tasks", "sweep": sweep, "before": _snapshot(root, root / "tasks")}


def _snapshot(tmp_path: Path, tasks_dir: Path) -> dict:
    """Every file and folder under the test's folder (task files excepted: cases damage them)."""
    out = {}
    for path in sorted(tmp_path.rglob("*")):
        if tasks_dir in path.parents or path == tasks_dir or path.name.startswith("sweep"):
            continue
        out[str(path.relative_to(tmp_path))] = path.read_bytes() if path.is_file() else "dir"
    return out


def _intact(world) -> None:
    after = _snapshot(world["tmp"], world["tasks"])
    assert sorted(after) == sorted(world["before"]), set(after) ^ set(world["before"])
    assert after == world["before"]


def _one_line(err: str, message: str, code: int, expected: int) -> None:
    assert code == expected, err
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert message in err, err


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def _sweep(w, old: str, new: str) -> list[str]:
    _edit(w["sweep"], old, new)
    return []


def _append_sweep(w, text: str) -> list[str]:
    w["sweep"].write_text(w["sweep"].read_text() + text, encoding="utf-8")
    return []


def _data(w, name: str) -> Path:
    return w["tasks"] / "data" / "Toy" / name


def _append(path: Path, data: bytes) -> list[str]:
    path.write_bytes(path.read_bytes() + data)
    return []


def _corrupt_gzip_corpus(w) -> list[str]:
    """corpus.jsonl replaced by a .gz whose deflate stream is corrupt inside (zlib's own error, not
    a truncation or a checksum): the first byte flip that makes zlib refuse the stream."""
    import gzip
    import io
    import zlib

    plain = _data(w, "corpus.jsonl")
    lines = plain.read_bytes() + b"".join(b'{"_id": "x%d", "text": "filler %d"}\n' % (i, i) for i in range(200))
    packed = gzip.compress(lines, mtime=0)
    for pos in range(10, len(packed) - 8):
        damaged = bytearray(packed)
        damaged[pos] ^= 0xFF
        try:
            with gzip.open(io.BytesIO(bytes(damaged))) as handle:
                handle.read()
        except zlib.error:
            plain.unlink()
            plain.with_name("corpus.jsonl.gz").write_bytes(bytes(damaged))
            return []
        except (OSError, EOFError):  # a flip in the header or the checksum: not this case
            pass
    raise AssertionError("no byte flip made zlib refuse the stream")


def _replace_line(path: Path, index: int, data: bytes) -> list[str]:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[index] = data
    path.write_bytes(b"".join(lines))
    return []


def _task_yaml(w, old: str, new: str) -> list[str]:
    _edit(w["tasks"] / "retrieval" / "Toy.yaml", old, new)
    return []


def _models(w, **changes) -> list[str]:
    write_models(w["tasks"], {"toy": {**TOY_MODEL, **changes}})
    return []


def _http(w, **options) -> list[str]:
    spec = {"kind": "http", "name": "remote", "url": "http://127.0.0.1:9/v1/embeddings", **options}
    _edit(w["sweep"], "backends: [hashing]", f"backends: [{json.dumps(spec)}]")
    return []


BOMB = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9) if p else ', '.join(['lol'] * 9)}]\n"
               for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh"))  # fmt: skip

# name -> (damage(world) -> extra argv, exit code, message)
RUN_CASES = {
    # sweep YAML
    "key typo": (lambda w: _append_sweep(w, "rescore_multipler: 2\n"), 2,
                 "unknown key 'rescore_multipler' (did you mean 'rescore_multiplier' or 'rescore_multipliers'?)"),
    "precision typo": (lambda w: _sweep(w, "binary-rescore]", "binary-rescor]"), 2,
                       "unknown precision 'binary-rescor' (did you mean 'binary-rescore'"),
    "unknown model": (lambda w: _sweep(w, "models: [toy]", "models: [tiy]"), 2, "unknown model 'tiy' (did you mean 'toy'?)"),
    "unknown backend": (lambda w: _sweep(w, "[hashing]", "[hashnig]"), 2, "unknown backend 'hashnig' (did you mean 'hashing'?)"),
    "dimension above the model's": (lambda w: _sweep(w, "[32, 16, 8]", "[33]"), 2, "dimension 33 is outside 1..32 for model toy"),
    "dimension 0": (lambda w: _sweep(w, "[32, 16, 8]", "[0]"), 2, "sweep.yaml:5: dims[0] must be at least 1, got 0"),
    "dimension not a number": (lambda w: _sweep(w, "[32, 16, 8]", "[32, x]"), 2, "dims[1]: input should be a valid integer, got 'x'"),
    "duplicate dimensions": (lambda w: _sweep(w, "[32, 16, 8]", "[16, 16]"), 2, "dims: has duplicates: [16]"),
    "no dimensions": (lambda w: _sweep(w, "[32, 16, 8]", "[]"), 2, "dims must not be empty"),
    "no models": (lambda w: _sweep(w, "models: [toy]", "models: []"), 2, "models must not be empty"),
    "negative seed": (lambda w: _append_sweep(w, "seed: -1\n"), 2, "seed must be at least 0, got -1"),
    "seed as text": (lambda w: _append_sweep(w, "seed: abc\n"), 2, "seed: input should be a valid integer, got 'abc'"),
    "batch size 0": (lambda w: _append_sweep(w, "batch_size: 0\n"), 2, "batch_size must be at least 1, got 0"),
    "batch size true": (lambda w: _append_sweep(w, "batch_size: true\n"), 2, "batch_size: input should be a valid integer, got True"),
    "top_k 0": (lambda w: _sweep(w, "top_k: 10", "top_k: 0"), 2, "top_k must be at least 1, got 0"),
    "limit 0": (lambda w: _append_sweep(w, "limit: 0\n"), 2, "limit must be at least 1, got 0"),
    "bootstrap 0": (lambda w: _sweep(w, "bootstrap_resamples: 50", "bootstrap_resamples: 0"), 2,
                    "bootstrap_resamples must be at least 1"),
    "measure as text": (lambda w: _append_sweep(w, "measure: 'yes'\n"), 2, "measure: input should be a valid boolean, got 'yes'"),
    "unknown executor": (lambda w: _append_sweep(w, "executor: gpu\n"), 2, "executor: input should be 'local' or 'dask', got 'gpu'"),
    "dask without scheduler": (lambda w: _append_sweep(w, "executor: dask\n"), 2, "executor dask needs a scheduler address"),
    "unhashable key": (lambda w: _append_sweep(w, "[1, 2]: x\n"), 2, "a key must be text, got list [1, 2]"),
    "number as key": (lambda w: _append_sweep(w, "384: x\n"), 2, "a key must be text, got int 384"),
    "YAML alias bomb": (lambda w: w["sweep"].write_text(BOMB), 2, "the YAML expands to more than 100,000 values"),
    "invalid YAML": (lambda w: _append_sweep(w, "dims: [32\n"), 2, "invalid YAML"),
    "a list, not a mapping": (lambda w: w["sweep"].write_text("- models\n- tasks\n"), 2, "expected a mapping, got list"),
    "duplicate key": (lambda w: _append_sweep(w, "top_k: 5\n"), 2, "duplicate key 'top_k'"),
    "NUL in the sweep name": (lambda w: _sweep(w, "name: toy", 'name: "a\\0b"'), 2, "name: must not contain a NUL character"),
    "300-character task name": (lambda w: _sweep(w, "tasks: [Toy]", f"tasks: [{'T' * 300}]"), 2, "is not a valid name"),
    "model name with a path": (lambda w: _sweep(w, "models: [toy]", "models: ['../toy']"), 2,
                               "models[0]: '../toy' is not a valid name"),
    "empty output folder": (lambda w: _sweep(w, f"output_dir: {w['tmp'] / 'results'}", "output_dir: ''"), 2,
                            "output_dir must not be empty"),
    "invalid UTF-8 in the sweep": (lambda w: w["sweep"].write_bytes(w["sweep"].read_bytes() + b"name: \xff\n"), 2, "not valid UTF-8"),
    "precision as a number": (lambda w: _sweep(w, "precisions: [float32, float16, int8, int8-tanh, binary, binary-rescore]",
                                               "precisions: 5"), 2, "precisions[0]: input should be a valid string, got 5"),
    "mteb task with a bad subset": (lambda w: _sweep(w, "tasks: [Toy]", "tasks: ['mteb:ArguAna/../x']"), 2,
                                    "is not a valid name"),
    # command-line flags
    "--dims empty": (lambda w: ["--dims", ""], 2, "--dims: dims must not be empty"),
    "--models empty": (lambda w: ["--models", ""], 2, "--models: models must not be empty"),
    "--dims not integers": (lambda w: ["--dims", "64,x"], 2, "argument --dims: expected comma-separated integers, got '64,x'"),
    "--dims with underscores": (lambda w: ["--dims", "1_6"], 2, "expected comma-separated integers, got '1_6'"),
    "--dims with other digits": (lambda w: ["--dims", "\u0663\u0662"], 2, "expected comma-separated integers"),
    "--dims with an empty item": (lambda w: ["--dims", "16,,8"], 2, "expected comma-separated integers"),
    "--run-id empty": (lambda w: ["--run-id", ""], 2, "run id '' is not a valid name"),
    "--run-id ..": (lambda w: ["--run-id", ".."], 2, "run id '..' is not a valid name"),
    "--run-id .": (lambda w: ["--run-id", "."], 2, "run id '.' is not a valid name"),
    "--run-id absolute": (lambda w: ["--run-id", str(w["tmp"])], 2, "is not a valid name"),
    "--run-id with a slash": (lambda w: ["--run-id", "a/b"], 2, "run id 'a/b' is not a valid name"),
    "--run-id hidden": (lambda w: ["--run-id", ".git"], 2, "run id '.git' is not a valid name"),
    "--run-id 300 characters": (lambda w: ["--run-id", "r" * 300], 2, "is not a valid name"),
    "--run-id of a foreign folder": (lambda w: ["--output-dir", str(w["tmp"]), "--run-id", "cache"], 2,
                                     "exists and is not a bench run folder; refusing to write into it"),
    "--run-id of a file": (lambda w: ["--output-dir", str(w["tmp"]), "--run-id", "sentinel.txt"], 2,
                           "exists and is not a folder"),
    "--limit 0": (lambda w: ["--limit", "0"], 2, "--limit: limit must be at least 1, got 0"),
    "--batch-size negative": (lambda w: ["--batch-size", "-1"], 2, "--batch-size: batch_size must be at least 1, got -1"),
    "--top-k text": (lambda w: ["--top-k", "abc"], 2, "argument --top-k: expected an integer, got 'abc'"),
    "--top-k below the main score's depth": (lambda w: ["--top-k", "5"], 2,
                                             "top_k 5 is below 10, the depth of task Toy's main score ndcg_at_10"),
    "unknown flag": (lambda w: ["--foo"], 2, "unrecognized arguments: --foo"),
    "unknown precision flag": (lambda w: ["--precisions", "float32,int3"], 2, "unknown precision 'int3'"),
    # task files
    "malformed JSON line": (lambda w: _replace_line(_data(w, "corpus.jsonl"), 1, b'{"_id": "d2", "text": }\n'), 2,
                            "corpus.jsonl:2: malformed JSON"),
    "invalid UTF-8 in a task file": (lambda w: _replace_line(_data(w, "queries.jsonl"), 2, b'{"_id": "q3", "text": "bad \xff"}\n'),
                                     2, "queries.jsonl:3: not valid UTF-8"),
    "empty document text": (lambda w: _append(_data(w, "corpus.jsonl"), b'{"_id": "d9", "title": "", "text": " "}\n'), 2,
                            "corpus.jsonl:7: empty text for id 'd9'"),
    "empty query text": (lambda w: _append(_data(w, "queries.jsonl"), b'{"_id": "q9", "text": ""}\n'), 2,
                         "queries.jsonl:5: empty text for id 'q9'"),
    "duplicate id": (lambda w: _append(_data(w, "queries.jsonl"), b'{"_id": "q1", "text": "again"}\n'), 2,
                     "queries.jsonl:5: duplicate id 'q1'"),
    "id that is an object": (lambda w: _append(_data(w, "queries.jsonl"), b'{"_id": {"a": 1}, "text": "x"}\n'), 2,
                             "queries.jsonl:5: '_id' must be a non-empty string"),
    "lone surrogate escape": (lambda w: _append(_data(w, "queries.jsonl"), b'{"_id": "q9", "text": "bad \\ud800"}\n'), 2,
                              "queries.jsonl:5: field 'text' holds an invalid Unicode escape"),
    "qrels naming an unknown query": (lambda w: _append(_data(w, "qrels/test.tsv"), b"q99\td1\t1\n"), 2,
                                      "test.tsv:8: query id 'q99' is not in queries.jsonl"),
    "qrels naming an unknown document": (lambda w: _append(_data(w, "qrels/test.tsv"), b"q1\td99\t1\n"), 2,
                                         "test.tsv:8: document id 'd99' is not in corpus.jsonl"),
    "fractional relevance": (lambda w: _append(_data(w, "qrels/test.tsv"), b"q1\td2\t0.5\n"), 2,
                             "test.tsv:8: relevance must be an integer, got '0.5'"),
    "negative relevance": (lambda w: _append(_data(w, "qrels/test.tsv"), b"q1\td2\t-1\n"), 2,
                           "test.tsv:8: relevance must not be negative, got -1"),
    "relevance 1e20": (lambda w: _append(_data(w, "qrels/test.tsv"), b"q1\td2\t100000000000000000000\n"), 2,
                       "test.tsv:8: relevance must be an integer, got '100000000000000000000'"),
    "relevance above a C int": (lambda w: _append(_data(w, "qrels/test.tsv"), b"q1\td2\t4294967296\n"), 2,
                                "test.tsv:8: relevance 4294967296 is above 1,000,000"),
    "relevance that would take pytrec_eval 17 GB": (
        lambda w: _append(_data(w, "qrels/test.tsv"), b"q1\td2\t2147483647\n"), 2,
        "test.tsv:8: relevance 2147483647 is above 1,000,000 (pytrec_eval allocates memory for every relevance level)"),
    "qrels with lone carriage returns": (
        lambda w: _data(w, "qrels/test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\rq1\td1\t1\rq2\td2\t1\r"), 2,
        "test.tsv:1: expected 3 tab-separated fields, got 7 (a carriage return inside the line"),
    "gzip stream corrupt inside": (_corrupt_gzip_corpus, 2, "corpus.jsonl.gz: unreadable after line"),
    "JSON nested past the parser's recursion": (
        lambda w: _append(_data(w, "queries.jsonl"), b'{"_id": "q9", "text": "x", "extra": ' + b"[" * 100_000 + b"}\n"),
        2, "queries.jsonl:5: malformed JSON (nested too deeply)"),
    "an id of 5000 digits": (lambda w: _append(_data(w, "queries.jsonl"), b'{"_id": ' + b"7" * 5000 + b', "text": "x"}\n'),
                             2, "queries.jsonl:5: malformed JSON (Exceeds the limit (4300 digits)"),
    "control character in the sweep": (lambda w: _append_sweep(w, "description: a\x07b\n"), 2,
                                       "sweep.yaml:11: invalid YAML: character #x0007"),
    "YAML nested past the parser's recursion": (lambda w: _append_sweep(w, "extra: " + "[" * 5000 + "]" * 5000 + "\n"),
                                                2, "sweep.yaml: invalid YAML: nested too deeply"),
    "a task defined in two files": (
        lambda w: (w["tasks"] / "retrieval" / "Toy2.yaml").write_text((w["tasks"] / "retrieval" / "Toy.yaml").read_text())
        and [], 2, "retrieval/Toy2.yaml: task 'Toy' is defined twice (also in "),
    "--tasks-dir that is a file": (lambda w: ["--tasks-dir", str(w["sweep"])], 2, "cannot read it (Not a directory)"),
    "two backends of one id": (lambda w: _sweep(w, "backends: [hashing]", "backends: [hashing, hashing-cpu-float32]"),
                               2, "backends has duplicates: ['hashing-cpu-float32']"),
    "two servers of one name": (lambda w: _sweep(w, "backends: [hashing]", "backends: [" + ", ".join(
        json.dumps({"kind": "http", "name": "r", "url": f"http://127.0.0.1:{port}/v1/embeddings"}) for port in (9, 10))
        + "]"), 2, "backends has duplicates: ['http-r']"),
    "duplicate lexical baselines": (lambda w: _append_sweep(w, "lexical: [bm25, bm25]\n"), 2,
                                    "lexical has duplicates: ['bm25', 'bm25']"),
    "lexical none with a baseline": (lambda w: _append_sweep(w, "lexical: [none, bm25]\n"), 2,
                                     "lexical 'none' cannot be combined with other baselines"),
    "--output-dir empty": (lambda w: ["--output-dir", ""], 2, "argument --output-dir: expected a path, got an empty value"),
    "--cache-dir empty": (lambda w: ["--cache-dir", ""], 2, "argument --cache-dir: expected a path, got an empty value"),
    "--calibration with other digits": (lambda w: ["--calibration", "sample:\u0663"], 2,
                                        "calibration sample must be an integer of at least 2, got '\u0663'"),
    "dask scheduler address it cannot parse": (lambda w: _append_sweep(w, "executor: dask\nscheduler: 'not a url'\n"),
                                               2, "cannot reach the Dask scheduler at not a url"),
    "relevance with an underscore": (lambda w: _append(_data(w, "qrels/test.tsv"), b"q1\td2\t1_0\n"), 2,
                                     "test.tsv:8: relevance must be an integer, got '1_0'"),
    "relevance in Arabic-Indic digits": (lambda w: _append(_data(w, "qrels/test.tsv"), "q1\td2\t\u0663\n".encode()), 2,
                                         "test.tsv:8: relevance must be an integer"),
    "no judged queries": (lambda w: _data(w, "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\n"), 2,
                          "task Toy: split 'test' has no judged queries"),
    "missing split": (lambda w: _task_yaml(w, "split: test", "split: dev"), 2, "dev.tsv: file not found"),
    "missing corpus file": (lambda w: _data(w, "corpus.jsonl").unlink(), 2, "corpus.jsonl: file not found"),
    "main_score typo": (lambda w: _append(w["tasks"] / "retrieval" / "Toy.yaml", b"main_score: ndcg_at_11\n"), 2,
                        "unknown main score 'ndcg_at_11' (did you mean"),
    "task name with a space": (lambda w: _task_yaml(w, "name: Toy", "name: To y"), 2, "name: 'To y' is not a valid name"),
    "task of another type": (lambda w: _append(w["tasks"] / "retrieval" / "Toy.yaml", b"type: classification\n"), 2,
                             "type: input should be 'retrieval'"),
    "unknown task source": (lambda w: _task_yaml(w, "source: beir", "source: csv"), 2, "unknown task source 'csv'"),
    "unknown task key": (lambda w: _append(w["tasks"] / "retrieval" / "Toy.yaml", b"splits: [test]\n"), 2,
                         "unknown key 'splits' (did you mean 'split'?)"),
    "task names differing only in case": (
        lambda w: [write_beir_task(w["tasks"], "toy", {"x": ("", "x")}, {"q": "x"}, {"q": {"x": 1}}), []][1], 2,
        "task names 'Toy' and 'toy' differ only in case"),
    # models
    "retired model key": (lambda w: _models(w, loader="sentence-transformers"), 2, "key 'loader' is not used by bench"),
    "model dim 0": (lambda w: _models(w, dim=0), 2, "dim must be at least 1, got 0"),
    "mrl_dims beyond dim": (lambda w: _models(w, mrl_dims=[16, 64]), 2, "mrl_dims must be integers in 1..32, got 64"),
    "model key with a path": (lambda w: [write_models(w["tasks"], {"../toy": TOY_MODEL}), []][1], 2,
                              "model name '../toy' is not a valid name"),
    "remote code without a pinned commit": (lambda w: _models(w, name="org/m", revision="main", trust_remote_code=True), 2,
                                            "must pin a 40-character commit revision, got 'main'"),
    "prompt for an unknown role": (lambda w: _models(w, prompts={"passage": "p: "}), 2, "unknown key 'passage'"),
    # remote backend options
    "http concurrency 0": (lambda w: _http(w, concurrency=0), 2, "concurrency must be at least 1, got 0"),
    "http batch_size 0": (lambda w: _http(w, batch_size=0), 2, "batch_size must be at least 1, got 0"),
    "http timeout as text": (lambda w: _http(w, timeout="abc"), 2, "timeout: input should be a valid number, got 'abc'"),
    "http max_retries -1": (lambda w: _http(w, max_retries=-1), 2, "max_retries must be at least 0, got -1"),
    "http dimensions as text": (lambda w: _http(w, dimensions="abc"), 2, "dimensions: input should be a valid integer"),
    "http unknown option": (lambda w: _http(w, retries=3), 2, "unknown key 'retries' (did you mean 'max_retries'?)"),
    "http url not http": (lambda w: _http(w, url="ftp://127.0.0.1/x"), 2, "url: must be an http:// or https:// URL"),
    "http format of another protocol": (lambda w: _http(w, protocol="tei", encoding_format="base64_int8"), 2,
                                        "encoding_format 'base64_int8' does not fit protocol tei"),
    "http key variable not set": (lambda w: _http(w, api_key_env="BENCH_TEST_UNSET_KEY"), 2,
                                  "environment variable BENCH_TEST_UNSET_KEY is not set"),
    "http non-ASCII key": (lambda w: _http(w, api_key_env="BENCH_TEST_ODD_KEY"), 2,
                           "the key in BENCH_TEST_ODD_KEY holds characters an HTTP header cannot carry"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_bad_run_input(case, world, capsys, monkeypatch):
    monkeypatch.delenv("BENCH_TEST_UNSET_KEY", raising=False)
    monkeypatch.setenv("BENCH_TEST_ODD_KEY", "sk-\u00e9t\u00e9-secret")
    damage, expected, message = RUN_CASES[case]
    extra = damage(world)
    extra = extra if isinstance(extra, list) else []
    code = main(["run", str(world["sweep"]), "--tasks-dir", str(world["tasks"]), *extra])
    err = capsys.readouterr().err
    _one_line(err, message, code, expected)
    assert "\u00e9t\u00e9" not in err  # the key itself is never shown
    _intact(world)


def test_the_catalogue_is_large():
    assert len(RUN_CASES) + len(RESULT_CASES) + len(PROFILE_CASES) >= 60


# --------------------------------------------------------------------------- result folders and baselines


def _damage_manifest(w, value) -> Path:
    (w["tmp"] / "results" / "done" / "manifest.json").write_text(value)
    return w["tmp"] / "results" / "done"


def _damage_rows(w, data: bytes | None = None, drop: str | None = None) -> Path:
    import pandas as pd

    path = w["tmp"] / "results" / "done" / "rows.parquet"
    if drop:
        pd.read_parquet(path).drop(columns=[drop]).to_parquet(path)
    else:
        path.write_bytes(data if data is not None else path.read_bytes()[: len(path.read_bytes()) // 2])
    return w["tmp"] / "results" / "done"


def _baseline(w, change, per_query=None) -> list[str]:
    """A baseline of the finished run, its JSON changed by ``change`` and its per-query frame by
    ``per_query`` (the JSON then records the changed file's digest, so only the content is bad)."""
    import hashlib

    from bench.gate import make_baseline, per_query_path, write_baseline

    baseline, frame = make_baseline(w["tmp"] / "results" / "done")
    path = w["tmp"] / "baseline.json"
    write_baseline(path, baseline, frame)
    stored = json.loads(path.read_text())
    if per_query is not None:
        per_query(frame).to_parquet(per_query_path(path), index=False)
        stored["per_query"]["sha256"] = hashlib.sha256(per_query_path(path).read_bytes()).hexdigest()
    path.write_text(change(stored) if callable(change) else change)
    return ["check", str(w["tmp"] / "results" / "done"), "--baseline", str(path), "--json", str(w["tmp"] / "out.json")]


def _set(frame, column, value, row=0):
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


def _tampered(w) -> list[str]:
    argv = _baseline(w, json.dumps)
    target = w["tmp"] / "baseline.per_query.parquet"
    target.write_bytes(target.read_bytes() + b"\0")
    return argv


def _without(stored: dict, key: str) -> str:
    return json.dumps({k: v for k, v in stored.items() if k != key})


def _first_value(baseline: dict, value) -> str:
    baseline["cells"][0]["metrics"]["ndcg_at_10"]["value"] = value
    return json.dumps(baseline)


RESULT_CASES = {
    "report on a missing folder": (lambda w: ["report", str(w["tmp"] / "nope")], 2, "run directory not found"),
    "report on a truncated rows.parquet": (lambda w: ["report", str(_damage_rows(w))], 2,
                                           "rows.parquet: not a readable Parquet file"),
    "report on rows without a column": (lambda w: ["report", str(_damage_rows(w, drop="main_score"))], 2,
                                        "rows.parquet: missing columns ['main_score']"),
    "report on an empty manifest": (lambda w: ["report", str(_damage_manifest(w, "{}"))], 2,
                                    "manifest.json: no schema_version; not a bench run manifest"),
    "report on a manifest that is a list": (lambda w: ["report", str(_damage_manifest(w, "[1, 2]"))], 2,
                                            "manifest.json: expected a JSON object, got list"),
    "report on a manifest missing keys": (lambda w: ["report", str(_damage_manifest(w, '{"schema_version": 1}'))], 2,
                                          "missing required key 'run_id'"),
    "report on a manifest from a newer bench": (lambda w: ["report", str(_damage_manifest(w, '{"schema_version": 99}'))], 2,
                                                "schema version 99 is newer than this bench understands"),
    "baseline from a truncated run": (lambda w: ["baseline", str(_damage_rows(w)), "-o", str(w["tmp"] / "b.json")], 2,
                                      "not a readable Parquet file"),
    "baseline without -o": (lambda w: ["baseline", str(w["tmp"] / "results" / "done")], 2,
                            "the following arguments are required: -o/--output"),
    "check against a list": (lambda w: _baseline(w, "[]"), 2, "expected a JSON object, got list"),
    "check against missing keys": (lambda w: _baseline(w, '{"kind": "bench-baseline"}'), 2, "missing required key"),
    "check against a string score": (lambda w: _baseline(w, lambda b: _first_value(b, "0.5")), 2,
                                     "cells[0].metrics.ndcg_at_10.value: input should be a valid number"),
    "check against a NaN score": (lambda w: _baseline(w, lambda b: _first_value(b, float("nan"))), 2,
                                  "cells[0].metrics.ndcg_at_10.value must be a finite number, got nan"),
    "check against zero cells": (lambda w: _baseline(w, lambda b: json.dumps({**b, "cells": []})), 2,
                                 "cells must not be empty"),
    "check with a NaN tolerance": (lambda w: [*_baseline(w, json.dumps), "--tolerance", "ndcg_at_10=abs:nan"], 2,
                                   "--tolerance 'ndcg_at_10=abs:nan': expected METRIC=abs:X"),
    "check with an infinite tolerance": (lambda w: [*_baseline(w, json.dumps), "--tolerance", "quality=rel:inf"], 2,
                                         "--tolerance 'quality=rel:inf'"),
    "check with an unknown metric": (lambda w: [*_baseline(w, json.dumps), "--metrics", "ndcg_at_11"], 2,
                                     "unknown metric 'ndcg_at_11'"),
    "check with a NaN hard limit": (lambda w: [*_baseline(w, json.dumps), "--hard-limit", "main_score=abs:nan"], 2,
                                    "--hard-limit 'main_score=abs:nan': expected METRIC=abs:X"),
    "check with a hard limit below the tolerance": (lambda w: [*_baseline(w, json.dumps), "--hard-limit",
                                                               "quality=abs:0.001"], 2,
                                                    "--hard-limit of main_score (0.001) is below its tolerance (0.005)"),
    "check against a baseline without per-query scores": (lambda w: _baseline(w, lambda b: _without(b, "per_query")),
                                                          2, "the baseline holds no per-query scores"),
    "check against altered per-query scores": (_tampered, 2, "baseline.per_query.parquet: its SHA-256 is not the one"),
    "check against a per-query file outside its folder": (
        lambda w: _baseline(w, lambda b: json.dumps({**b, "per_query": {**b["per_query"], "file": "../x.parquet"}})),
        2, "per_query.file: '../x.parquet' is not a valid name"),
    "check against a missing per-query file": (
        lambda w: _baseline(w, lambda b: json.dumps({**b, "per_query": {**b["per_query"], "file": "gone.parquet"}})),
        2, "gone.parquet: cannot read the baseline's per-query scores"),
    "check against a NaN per-query score": (lambda w: _baseline(w, json.dumps, lambda f: _set(f, "score", float("nan"))),
                                            2, "is nan, not a finite number in [0, 1]"),
    "check against a per-query score above 1": (lambda w: _baseline(w, json.dumps, lambda f: _set(f, "score", 1.5)),
                                                2, "is 1.5, not a finite number in [0, 1]"),
    "check against per-query scores of another mean": (
        lambda w: _baseline(w, json.dumps, lambda f: _set(f, "score", 1.0 - f.score[0])), 2,
        "the files do not belong together"),
    "check against a per-query file without query ids": (
        lambda w: _baseline(w, json.dumps, lambda f: f.drop(columns="query_id")), 2, "missing column 'query_id'"),
    "check against a per-query file of string scores": (
        lambda w: _baseline(w, json.dumps, lambda f: f.astype({"score": str})), 2,
        "column 'score' must hold number values"),
    "check a run whose per-query scores disagree with its rows": (
        lambda w: (_baseline(w, json.dumps), _damage_per_query(w))[0], 2,
        "the run's files do not belong together"),
    "baseline from a run whose per-query scores disagree with its rows": (
        lambda w: ["baseline", str(_damage_per_query(w)), "-o", str(w["tmp"] / "b.json")], 2,
        "per_query.parquet: the per-query scores of cell"),
}  # fmt: skip


def _damage_per_query(w) -> bool:
    import pandas as pd

    path = w["tmp"] / "results" / "done" / "per_query.parquet"
    frame = pd.read_parquet(path)
    frame["ndcg_at_10"] = 1.0 - frame["ndcg_at_10"]
    frame.to_parquet(path)
    return w["tmp"] / "results" / "done"

PROFILE_CASES = {
    "profile --lengths 0": (["--lengths", "0"], 2, "--lengths: lengths[0] must be at least 1, got 0"),
    "profile --batch-sizes 0": (["--batch-sizes", "0"], 2, "--batch-sizes: batch_sizes[0] must be at least 1, got 0"),
    "profile --repeats 0": (["--repeats", "0"], 2, "--repeats: repeats must be at least 1, got 0"),
    "profile --budget nan": (["--budget", "nan"], 2, "argument --budget: expected a finite number, got 'nan'"),
    "profile --dtypes int8": (["--dtypes", "int8"], 2, "--dtypes: dtypes[0]: input should be 'float32', 'bfloat16'"),
    "profile unknown model": (["--models", "pplx"], 2, "unknown model 'pplx'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RESULT_CASES))
def test_bad_result_input(case, world, capsys):
    damage, expected, message = RESULT_CASES[case]
    argv = damage(world)
    world["before"] = _snapshot(world["tmp"], world["tasks"])  # after the damage: nothing else may change
    code = main(argv)
    err = capsys.readouterr().err
    _one_line(err, message, code, expected)
    _intact(world)


@pytest.mark.parametrize("case", list(PROFILE_CASES))
def test_bad_profile_flags(case, world, capsys):
    flags, expected, message = PROFILE_CASES[case]
    code = main(["profile", "--output-dir", str(world["tmp"] / "results"), *flags])
    err = capsys.readouterr().err
    _one_line(err, message, code, expected)
    _intact(world)


# --------------------------------------------------------------------------- broken backends and storage


@pytest.mark.parametrize("output,code,message", [
    (lambda n, d: np.where(np.arange(d) == 3, np.inf, 0.0) * np.ones((n, 1)), 3, "NaN or Inf"),
    (lambda n, d: np.zeros((n + 1, d)), 3, "returned shape"),
    (lambda n, d: np.zeros((n, d - 2)), 3, "width 30, expected 32"),
])  # fmt: skip
def test_bad_vectors_from_a_backend(output, code, message, world, capsys, monkeypatch):
    monkeypatch.setattr(HashingEncoder, "encode", lambda self, texts, role: output(len(texts), 32))
    exit_code = main(["run", str(world["sweep"]), "--tasks-dir", str(world["tasks"]), "--cache-dir",
                      str(world["tmp"] / "empty-cache"), "--run-id", "broken"])  # fmt: skip
    _one_line(capsys.readouterr().err, message, exit_code, code)
    _intact(world)


def test_an_output_folder_that_cannot_be_written_is_a_storage_error(world, capsys, monkeypatch):
    real = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.parent == world["tmp"] / "results":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    code = main(["run", str(world["sweep"]), "--tasks-dir", str(world["tasks"]), "--run-id", "new"])
    _one_line(capsys.readouterr().err, "new: cannot create the folder (Permission denied)", code, 4)
    _intact(world)


def test_a_file_where_the_output_folder_should_be_is_bad_input(world, capsys):
    code = main(["run", str(world["sweep"]), "--tasks-dir", str(world["tasks"]),
                 "--output-dir", str(world["tmp"] / "sentinel.txt")])  # fmt: skip
    _one_line(capsys.readouterr().err, "cannot create the folder (Not a directory)", code, 2)
    _intact(world)


def test_a_full_disk_while_writing_keeps_finished_cells(toy_sweep, toy_tasks_dir, tmp_path, capsys, monkeypatch):
    import bench.cache as cache

    real, calls = cache.os.replace, []

    def replace(src, dst):
        if "results" in Path(dst).parts and Path(dst).parent.name == "cells":
            calls.append(dst)
            if len(calls) == 4:  # three cells of the run are finished by then
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(cache.os, "replace", replace)
    code = main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "full"])
    _one_line(capsys.readouterr().err, "No space left on device", code, 4)
    cells = list((tmp_path / "results" / "full" / "cells").glob("*.json"))
    assert len(cells) == 3 and all(json.loads(p.read_text())["metrics"] for p in cells)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(cache.os, "replace", real)
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "full"]) == 0


def test_a_full_disk_for_a_memory_mapped_matrix_is_a_storage_error_not_sigbus(world, capsys, monkeypatch):
    import os

    from bench import embed

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(embed, "MEMMAP_BYTES", 0)  # every corpus goes to a memory-mapped matrix
    monkeypatch.setattr(os, "posix_fallocate", no_space)
    code = main(["run", str(world["sweep"]), "--tasks-dir", str(world["tasks"]), "--cache-dir",
                 str(world["tmp"] / "cache")])  # fmt: skip
    _one_line(capsys.readouterr().err, "cannot allocate", code, 4)
    assert not [p for p in (world["tmp"] / "cache").rglob("*.tmp")]
    (world["tmp"] / "cache" / "matrices").rmdir()  # bench's own cache subfolder, left empty
    _intact(world)


def test_a_corrupted_cache_chunk_is_detected_discarded_and_recomputed(toy_sweep, toy_tasks_dir, tmp_path, caplog):
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "a"]) == 0
    chunk = next((tmp_path / "cache").rglob("chunk-*.npz"))
    chunk.write_bytes(chunk.read_bytes()[:-40] + b"\0" * 40)
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--run-id", "b"]) == 0
    assert "corrupted" in caplog.text
    a = (tmp_path / "results" / "a" / "rows.csv").read_text().splitlines()[1:]
    b = (tmp_path / "results" / "b" / "rows.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:12] for r in a] == [r.split(",")[:12] for r in b]


def test_a_byte_order_mark_is_accepted_with_a_warning(toy_sweep, toy_tasks_dir, caplog):
    path = toy_tasks_dir / "data" / "Toy" / "corpus.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir)]) == 0
    assert "byte-order mark" in caplog.text and "corpus.jsonl" in caplog.text
