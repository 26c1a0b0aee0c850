import pytest

from bench import runner
from bench.cli import main
from bench.config import SweepConfig, load_config, with_overrides
from bench.encoders import parse_backend
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
    assert "| Toy | test | default | ndcg_at_10 |" in out and "| pass |" in out and "1/1 within" in out


def test_a_score_outside_the_tolerance_fails_and_a_wider_tolerance_passes(toy_tasks_dir, tmp_path, measured, capsys):
    _suite(toy_tasks_dir, measured + 0.01)
    assert _reproduce(toy_tasks_dir, tmp_path) == 1
    assert "-0.01000 | fail |" in capsys.readouterr().out
    assert _reproduce(toy_tasks_dir, tmp_path, "--tolerance", "0.02") == 0


def test_a_missing_hub_stops_the_suite_at_once_in_one_line(toy_tasks_dir, tmp_path, measured, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = "".join(f"test/toy-hashing,v1,{t},test,default,main_score,0.5,0.5,2.0.0,,x\n" for t in ("ArguAna", "SCIDOCS"))
    _suite(toy_tasks_dir, round(measured, 5), rows)
    assert _reproduce(toy_tasks_dir, tmp_path) == 2  # not one error row per task: no task could load
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "MTEB task ArguAna" in captured.err and "hub is unreachable" in captured.err


def test_a_task_that_cannot_run_for_its_own_reason_is_an_error_row(toy_tasks_dir, tmp_path, measured, capsys):
    _suite(toy_tasks_dir, round(measured, 5), "test/toy-hashing,v1,Toy,dev,default,main_score,0.5,0.5,2.0.0,,x\n")
    assert _reproduce(toy_tasks_dir, tmp_path) == 1
    out = capsys.readouterr().out
    assert "| Toy | dev | default | – | 0.50000 | – | – | error |" in out and "| pass |" in out
    assert "errors (each in full):" in out and "- Toy dev default: " in out and "results: " in out


def test_each_reference_row_is_compared_with_its_own_split_subset_and_main_score(tmp_path, monkeypatch, capsys):
    from tests.mteb_offline import MULTI, _tasks_dir, offline_task, register

    register(monkeypatch, offline_task(MULTI))
    tasks_dir = _tasks_dir(tmp_path)
    config = SweepConfig(models=("kw",), tasks=("mteb:OfflineMultiSubset",), backends=(parse_backend("hashing"),),
                         dims=(5,), precisions=("float32",), output_dir=tmp_path / "sweep",
                         cache_dir=tmp_path / "cache", measure=False, bootstrap_resamples=20)  # fmt: skip
    _, rows = read_run(runner.run(config, tasks_dir))
    score = {(r.split, r.subset): round(r.main_score, 5) for r in rows.itertuples()}
    (tasks_dir / "suites").mkdir()
    (tasks_dir / "suites" / "kw.yaml").write_text("model: kw\nreference: ref.csv\nreference_model: test/keywords\n"
                                                  "precision: float32\nbackend: hashing\ntolerance: 0.00001\n")
    a, b = next((a, b) for a in score for b in score if score[a] != score[b])
    for published, passed in ((score, 4), ({**score, a: score[b], b: score[a]}, 2)):
        lines = [f"test/keywords,0,OfflineMultiSubset,{sp},{su},main_score,{v},0,2.0.0,,x" for (sp, su), v in published.items()]
        (tasks_dir / "suites" / "ref.csv").write_text(HEADER + "\n".join(lines) + "\n")
        code = main(["reproduce", "kw", "--tasks-dir", str(tasks_dir), "--output-dir", str(tmp_path / "rep"),
                     "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
        out = capsys.readouterr().out
        assert f"{passed}/4 within" in out and code == (0 if passed == 4 else 1)
        assert out.count("| ndcg_at_1 |") == 4  # the task's own main score, from MTEB's metadata


def test_bundled_pplx_suites_cover_the_published_tables():
    for size, rows in (("0.6b", 763), ("4b", 570)):
        suite = load_suite(f"pplx-embed-v1-{size}", REPO / "tasks")
        assert suite["precision"] == "int8-tanh" and suite["tolerance"] == 0.005
        assert len(read_reference(suite["reference"], suite["reference_model"], None)) == rows


def test_reference_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text(HEADER + "m,r,T,test,default,main_score,high,0,2,,x\n")
    with pytest.raises(InputError, match=r"ref\.csv:2: main_score 'high' is not a finite number"):
        read_reference(path, "m", None)


def test_a_reference_of_another_dataset_revision_is_neither_a_pass_nor_a_fail(toy_tasks_dir, tmp_path, measured,
                                                                               capsys):  # fmt: skip
    spec = toy_tasks_dir / "retrieval" / "Toy.yaml"
    spec.write_text(spec.read_text() + "revision: r2\n")
    (toy_tasks_dir / "references").mkdir(exist_ok=True)
    for published, code, status in (("r1", 1, "other data"), ("r2", 0, "pass"), ("", 0, "pass")):
        _suite(toy_tasks_dir, round(measured, 5))
        path = toy_tasks_dir / "references" / "toy.csv"
        path.write_text(path.read_text().replace(",2.0.0,,ours", f",2.0.0,{published},ours"))
        assert _reproduce(toy_tasks_dir, tmp_path) == code
        out = capsys.readouterr().out
        assert f"| {status} |" in out
        assert ("the reference scored dataset revision r1, the run r2" in out) == (published == "r1")


def test_a_reference_of_another_model_revision_is_neither_a_pass_nor_a_fail(toy_tasks_dir, tmp_path, measured, capsys):
    _suite(toy_tasks_dir, round(measured, 5))
    path = toy_tasks_dir / "references" / "toy.csv"
    path.write_text(path.read_text().replace("test/toy-hashing,v1,", "test/toy-hashing,v0,"))
    assert _reproduce(toy_tasks_dir, tmp_path) == 1
    out = capsys.readouterr().out
    assert "| other data |" in out and "the reference scored model revision v0, the run v1" in out


def test_a_limited_run_is_never_a_pass(toy_tasks_dir, tmp_path, measured, capsys):
    """A --limit subset scores other queries over a cut corpus than the published task: neither a
    pass nor a fail, even where its number happens to be within the tolerance."""
    _suite(toy_tasks_dir, round(measured, 5))
    assert _reproduce(toy_tasks_dir, tmp_path, "--limit", "2") == 1
    out = capsys.readouterr().out
    assert "| limited |" in out and "| pass |" not in out and "0/1 within" in out and "--limit 2 scored" in out


def test_a_suite_task_without_a_reference_row_is_refused(toy_tasks_dir, tmp_path, measured, capsys):
    _suite(toy_tasks_dir, round(measured, 5))
    suite = toy_tasks_dir / "suites" / "toy.yaml"
    for tasks, expected in (("[Toy, Absent]", "task 'Absent' has no row for model 'test/toy-hashing'"),
                            ("[toy]", "task 'toy' has no row for model 'test/toy-hashing' (did you mean 'Toy'?)")):
        suite.write_text(suite.read_text().split("tasks:")[0] + f"tasks: {tasks}\n")
        assert _reproduce(toy_tasks_dir, tmp_path) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1


@pytest.mark.parametrize("value", ["-1", "1.5", "nan"])
def test_a_tolerance_outside_0_to_1_is_refused(toy_tasks_dir, tmp_path, measured, capsys, value):
    _suite(toy_tasks_dir, round(measured, 5))
    assert _reproduce(toy_tasks_dir, tmp_path, "--tolerance", value) == 2
    assert "argument --tolerance: " in capsys.readouterr().err
