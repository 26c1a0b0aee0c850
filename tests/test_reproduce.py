import pytest

from bench import runner
from bench.cli import main
from bench.config import load_config, with_overrides
from bench.errors import InputError
from bench.reproduce import load_suite, read_reference
from bench.results import read_run
from tests.conftest import REPO

HEADER = "model,model_revision,task,split,subset,main_score_name,main_score,ndcg_at_10,mteb_version,dataset_revision,source_path\n"


def _suite(tasks_dir, score: float, extra_rows: str = "") -> None:
    (tasks_dir / "references").mkdir(exist_ok=True)
    (tasks_dir / "references" / "toy.csv").write_text(
        HEADER + f"test/toy-hashing,v1,Toy,test,default,main_score,{score},{score},2.0.0,,ours\n" + extra_rows
    )
    (tasks_dir / "suites").mkdir(exist_ok=True)
    (tasks_dir / "suites" / "toy.yaml").write_text(
        "model: toy\nreference: ../references/toy.csv\nreference_model: test/toy-hashing\n"
        "precision: float32\nbackend: hashing\ntolerance: 0.005\n"
    )


@pytest.fixture
def measured(toy_sweep, toy_tasks_dir):
    config = with_overrides(load_config(toy_sweep), measure=False)
    _, rows = read_run(runner.run(config, toy_tasks_dir))
    return float(rows[(rows.dim == 32) & (rows.precision == "float32")].main_score.iloc[0])


def _reproduce(tasks_dir, tmp_path, *flags):
    return main(["reproduce", "toy", "--tasks-dir", str(tasks_dir), "--output-dir", str(tmp_path / "rep"),
                 "--cache-dir", str(tmp_path / "cache"), *flags])  # fmt: skip


def test_a_matching_reference_passes(toy_tasks_dir, tmp_path, measured, capsys):
    _suite(toy_tasks_dir, round(measured, 5))
    assert _reproduce(toy_tasks_dir, tmp_path) == 0
    out = capsys.readouterr().out
    assert "| Toy | test | default |" in out and "| pass |" in out and "1/1 within" in out


def test_a_score_outside_the_tolerance_fails_and_a_wider_tolerance_passes(toy_tasks_dir, tmp_path, measured, capsys):
    _suite(toy_tasks_dir, measured + 0.01)
    assert _reproduce(toy_tasks_dir, tmp_path) == 1
    assert "-0.01000 | fail |" in capsys.readouterr().out
    assert _reproduce(toy_tasks_dir, tmp_path, "--tolerance", "0.02") == 0


def test_a_task_that_cannot_run_is_an_error_not_a_crash(toy_tasks_dir, tmp_path, measured, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _suite(toy_tasks_dir, round(measured, 5), "test/toy-hashing,v1,ArguAna,test,default,main_score,0.5,0.5,2.0.0,,x\n")
    assert _reproduce(toy_tasks_dir, tmp_path) == 1
    out = capsys.readouterr().out
    assert "| ArguAna | test | default | 0.50000 | – |" in out and "| error |" in out and "| pass |" in out


def test_bundled_pplx_suites_cover_the_published_tables():
    for size, rows in (("0.6b", 763), ("4b", 570)):
        suite = load_suite(f"pplx-embed-v1-{size}", REPO / "tasks")
        assert suite["precision"] == "int8-tanh" and suite["tolerance"] == 0.005
        assert len(read_reference(suite["reference"], suite["reference_model"], None)) == rows


def test_reference_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text(HEADER + "m,r,T,test,default,main_score,high,0,2,,x\n")
    with pytest.raises(InputError, match=r"ref\.csv:2: main_score 'high' is not a number"):
        read_reference(path, "m", None)
