import json

import pytest

from bench import runner
from bench.cli import main
from bench.config import load_config
from bench.results import read_run


def test_export_mteb_writes_files_mtebs_own_loader_reads(toy_sweep, toy_tasks_dir, tmp_path, capsys):
    from mteb import TaskResult

    run_dir = runner.run(load_config(toy_sweep), toy_tasks_dir)
    _, rows = read_run(run_dir)
    out = tmp_path / "mteb-results"
    assert main(["export-mteb", str(run_dir), str(out)]) == 0
    files = sorted(out.rglob("*.json"))
    assert len(files) == len(rows) == 18
    path = out / "hashing-cpu-float32__16__binary-rescore-m4" / "test__toy-hashing" / "v1" / "Toy.json"
    loaded = TaskResult.from_disk(path)
    row = rows[(rows.dim == 16) & (rows.precision == "binary-rescore")].iloc[0]
    (scores,) = loaded.scores["test"]
    assert loaded.task_name == "Toy" and scores["hf_subset"] == "default"
    assert scores["main_score"] == pytest.approx(row.main_score) and scores["ndcg_at_10"] == pytest.approx(row.ndcg_at_10)
    assert json.loads(path.read_text())["mteb_version"]
