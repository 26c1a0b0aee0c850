import subprocess
import sys

import pytest

from bench.cli import main
from bench.results import read_run


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_toy_sweep_prints_a_table_and_writes_rows_manifest_and_plots(toy_sweep, toy_tasks_dir, tmp_path, capsys):
    code, out, _ = _run(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir)], capsys)
    assert code == 0
    assert "| precision | 32 | 16 | 8 |" in out and "\n| binary-rescore ×4 | " in out
    (run_dir,) = (tmp_path / "results").iterdir()
    manifest, rows = read_run(run_dir)
    assert len(rows) == 18 and manifest["run_id"] == run_dir.name
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    assert plots == ["Toy__pareto.png", "peak_memory_by_backend.png", "throughput_by_backend.png",
                     "toy__Toy__hashing-cpu-float32__ci.png",
                     "toy__Toy__hashing-cpu-float32__score_vs_bytes.png",
                     "toy__Toy__hashing-cpu-float32__score_vs_dim.png",
                     "toy__Toy__hashing-cpu-float32__score_vs_search_qps.png"]  # fmt: skip
    table = (run_dir / "table.md").read_text()
    # repeated model/task/backend values are shown once per table: search, cells, cost
    assert table.count("\n| toy | Toy | hashing-cpu-float32 | ") == 3
    assert table.count("\n|  |  |  | ") == 17 + 17
    headings = [line for line in table.splitlines() if line.startswith("#")]
    assert headings == ["# Run " + run_dir.name, "## Quality", "### toy · Toy · hashing-cpu-float32",
                        "## Encoding cost", "## Exact search", "## All cells"]  # fmt: skip
    header = next(line for line in table.splitlines() if line.startswith("| model | task | backend | dimension"))
    assert "_" not in header  # human column names, not result column names
    assert "## Encoding cost" in out and "docs/s" in out and "peak RSS (MiB)" in out


def test_report_rebuilds_tables_and_plots_from_files_only(toy_sweep, toy_tasks_dir, tmp_path, capsys):
    _run(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir)], capsys)
    (run_dir,) = (tmp_path / "results").iterdir()
    for p in (run_dir / "plots").glob("*.png"):
        p.unlink()
    (run_dir / "table.md").unlink()
    code, out, _ = _run(["report", str(run_dir)], capsys)
    assert code == 0 and "nDCG@10" in out
    assert len(list((run_dir / "plots").glob("*.png"))) == 7 and (run_dir / "table.md").is_file()


def test_flags_override_the_config(toy_sweep, toy_tasks_dir, tmp_path, capsys):
    code, _, _ = _run(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--dims", "16,8",
                       "--precisions", "binary,int8", "--run-id", "flags"], capsys)  # fmt: skip
    assert code == 0
    _, rows = read_run(tmp_path / "results" / "flags")
    assert sorted(set(rows.precision)) == ["binary", "float32", "int8"] and set(rows.dim) == {32, 16, 8}


BAD = [
    (["--precisions", "float32,int3"], "unknown precision 'int3'"),
    (["--rescore-multipliers", "4,0"], "--rescore-multipliers: rescore_multipliers[1] must be at least 1, got 0"),
    (["--lexical", "bm26"], "unknown lexical baseline 'bm26' (did you mean"),
    (["--calibration", "sample:x"], "calibration sample must be an integer of at least 2, got 'x'"),
    (["--dims", "64"], "dimension 64 is outside 1..32 for model toy"),
    (["--dims", "0"], "--dims: dims[0] must be at least 1, got 0"),
    (["--models", "toyy"], "unknown model 'toyy' (did you mean 'toy'?)"),
    (["--tasks", "toy"], "unknown task 'toy' (did you mean 'Toy'?)"),
    (["--backends", "tensorrt"], "unknown backend 'tensorrt'"),
    (["--limit", "0"], "--limit: limit must be at least 1, got 0"),
]


@pytest.mark.parametrize("flags,message", BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(toy_sweep, toy_tasks_dir, tmp_path, capsys, flags, message):
    code, out, err = _run(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), *flags], capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("bench: error: ")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "corpus.jsonl").write_text('{"_id": "x", "text": "ok"}\n{"_id": oops}\n'),
     "corpus.jsonl:2: malformed JSON"),
    (lambda d: (d / "qrels" / "test.tsv").unlink(), "test.tsv: file not found"),
    (lambda d: (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td99\t1\n"),
     "test.tsv:2: document id 'd99' is not in corpus.jsonl"),
])  # fmt: skip
def test_broken_task_folder_is_named_exit_2_and_writes_nothing(toy_sweep, toy_tasks_dir, tmp_path, capsys, damage, message):
    damage(toy_tasks_dir / "data" / "Toy")
    code, _, err = _run(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir)], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_console_script_exit_code_and_ls():
    out = subprocess.run([sys.executable, "-m", "bench.cli", "ls", "tasks"], capture_output=True, text=True)
    assert out.returncode == 0 and "SciFact\tbeir\tsplit=test" in out.stdout and "ArguAna\tmteb" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "bench.cli", "report", "/nonexistent/run"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip() == "bench: error: /nonexistent/run: run directory not found"
