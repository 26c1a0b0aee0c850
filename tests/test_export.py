"""``bench export-mteb``: one MTEB TaskResult per task and cell setting, every split and subset,
read back by mteb's own ``TaskResult.from_disk``, whose ``get_score()`` is bench's aggregate."""

import importlib.metadata
import json

import pytest

from bench import runner
from bench.aggregate import task_aggregates
from bench.cli import main
from bench.config import load_config, with_overrides
from bench.html import _aggregates
from bench.results import read_run
from tests.mteb_offline import MULTI, SUBSETS, bench_rows, offline_task, register


def test_a_multi_subset_multi_split_run_round_trips_through_mtebs_loader(tmp_path, monkeypatch):
    from mteb import TaskResult

    register(monkeypatch, offline_task(MULTI))
    run_dir, rows = bench_rows(tmp_path, ("mteb:OfflineMultiSubset",), precisions=("float32", "binary"))
    out = tmp_path / "mteb-results"
    assert main(["export-mteb", str(run_dir), str(out)]) == 0
    files = sorted(out.rglob("OfflineMultiSubset.json"))
    experiments = [p.relative_to(out).parts[0] for p in files]
    assert experiments == ["hashing-cpu-float32__5__binary", "hashing-cpu-float32__5__float32"]
    aggregates = task_aggregates(rows).set_index("precision")
    assert "<h2>MTEB aggregates</h2>" in _aggregates(rows) and "OfflineMultiSubset" in _aggregates(rows)
    for path in files:
        loaded = TaskResult.from_disk(path)
        precision = path.relative_to(out).parts[0].rsplit("__", 1)[1]
        assert loaded.get_score() == pytest.approx(aggregates.loc[precision, "main_score"], abs=1e-12)
        assert loaded.dataset_revision == "rev-offline-1" and loaded.task_name == "OfflineMultiSubset"
        assert loaded.mteb_version == importlib.metadata.version("mteb")
        assert sorted(loaded.scores) == ["dev", "test"]
        for split, entries in loaded.scores.items():
            assert [(e["hf_subset"], e["languages"]) for e in entries] == list(SUBSETS.items())
            for entry in entries:
                same = (rows.split == split) & (rows.subset == entry["hf_subset"]) & (rows.precision == precision)
                (row,) = rows[same].itertuples()
                assert entry["main_score"] == entry["ndcg_at_1"] == pytest.approx(row.main_score, abs=1e-12)
        meta = json.loads((path.parent / "model_meta.json").read_text())
        assert (meta["name"], meta["revision"], meta["embed_dim"], meta["similarity_fn_name"]) == (
            "test/keywords", "0", 5, "cosine")


def test_every_cell_setting_gets_its_own_folder(toy_sweep, toy_tasks_dir, tmp_path):
    from mteb import TaskResult

    spec = toy_tasks_dir / "retrieval" / "Toy.yaml"
    spec.write_text(spec.read_text() + "revision: r1\nlanguages: [eng-Latn]\n")
    run_dir = runner.run(load_config(toy_sweep), toy_tasks_dir)
    _, rows = read_run(run_dir)
    out = tmp_path / "mteb-results"
    assert main(["export-mteb", str(run_dir), str(out)]) == 0
    assert len(sorted(out.rglob("Toy.json"))) == len(rows) == 18
    path = out / "hashing-cpu-float32__16__binary-rescore__m4" / "test__toy-hashing" / "v1" / "Toy.json"
    (scores,) = TaskResult.from_disk(path).scores["test"]
    row = rows[(rows.dim == 16) & (rows.precision == "binary-rescore")].iloc[0]
    assert scores["hf_subset"] == "default" and scores["languages"] == ["eng-Latn"]
    assert scores["main_score"] == pytest.approx(row.main_score) and scores["ndcg_at_10"] == pytest.approx(row.ndcg_at_10)


@pytest.mark.parametrize("missing,message", [
    ("languages", "task Toy declares no languages"),
    ("revision", "task Toy: dataset revision [''] is not one known value"),
])  # fmt: skip
def test_a_task_without_a_revision_or_languages_is_refused_not_made_up(toy_sweep, toy_tasks_dir, tmp_path, capsys,
                                                                        missing, message):  # fmt: skip
    spec = toy_tasks_dir / "retrieval" / "Toy.yaml"
    spec.write_text(spec.read_text() + ("revision: r1\n" if missing == "languages" else "languages: [eng-Latn]\n"))
    run_dir = runner.run(load_config(toy_sweep), toy_tasks_dir)
    assert main(["export-mteb", str(run_dir), str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("how,message", [
    ("limit", "the run scored a --limit 3 subset of its tasks; an MTEB result is of the whole task"),
    ("positive", "task(s) Toy filter queries by a rule other than MTEB's (query_filter)"),
])  # fmt: skip
def test_a_subset_or_a_non_mteb_query_filter_is_not_exported_as_an_mteb_result(toy_sweep, toy_tasks_dir, tmp_path,
                                                                                capsys, how, message):  # fmt: skip
    spec = toy_tasks_dir / "retrieval" / "Toy.yaml"
    spec.write_text(spec.read_text() + "revision: r1\nlanguages: [eng-Latn]\n"
                    + ("query_filter: positive\n" if how == "positive" else ""))  # fmt: skip
    config = with_overrides(load_config(toy_sweep), limit=3 if how == "limit" else None, measure=False)
    run_dir = runner.run(config, toy_tasks_dir)
    assert main(["export-mteb", str(run_dir), str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_aggregates_table_names_each_cells_multiplier_and_context():
    import pandas as pd

    from bench.html import _aggregates
    from bench.report import aggregate_table

    base = {"model": "m", "task_name": "T", "backend": "b", "dim": 8, "precision": "binary-rescore",
            "main_score_name": "ndcg_at_10", "split": "test"}  # fmt: skip
    rows = pd.DataFrame([{**base, "rescore_multiplier": m, "context": c, "subset": s, "main_score": score}
                         for m, c, s, score in [(1, "independent", "a", 0.2), (1, "independent", "b", 0.4),
                                                (4, "independent", "a", 0.5), (4, "independent", "b", 0.7),
                                                (4, "late", "a", 0.6), (4, "late", "b", 0.9)]])  # fmt: skip
    table = aggregate_table(rows)
    assert "| binary-rescore ×1 | ndcg_at_10 | 0.3000 |" in table
    assert "| binary-rescore ×4 | ndcg_at_10 | 0.6000 |" in table
    assert "| binary-rescore ×4 (late) | ndcg_at_10 | 0.7500 |" in table
    html = _aggregates(rows)
    assert "binary-rescore ×4 (late)" in html and "rescore_multiplier" not in html and "main score" in html


def test_an_aggregate_over_an_entry_without_a_score_has_none():
    """MTEB's get_score() is np.mean over every entry: a NaN main score leaves the task's aggregate
    NaN (pandas' mean skipped it while ``entries`` still counted it: 0.6 'over 3 subsets')."""
    import numpy as np
    import pandas as pd

    base = dict(model="m", backend="b", dim=32, precision="float32", rescore_multiplier=0, context="independent",
                main_score_name="ndcg_at_10", task_name="T", split="test")  # fmt: skip
    rows = pd.DataFrame([{**base, "task": f"T/{s}", "subset": s, "main_score": v}
                         for s, v in (("a", 0.5), ("b", np.nan), ("c", 0.7))])  # fmt: skip
    first = task_aggregates(rows).iloc[0]
    assert first.entries == 3 and np.isnan(first.main_score)
    from bench.report import aggregate_table

    assert "| – | 3 |" in aggregate_table(rows) and "nan" not in aggregate_table(rows)
    assert task_aggregates(rows.assign(main_score=[0.5, 0.6, 0.7])).iloc[0].main_score == pytest.approx(0.6)
