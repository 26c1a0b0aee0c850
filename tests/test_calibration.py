"""The calibration set of the int8 family as a sweep option, recorded in rows; and rescore
multipliers as a sweep axis, part of each rescoring cell's identity."""

from __future__ import annotations

import numpy as np
import pytest

from bench import runner
from bench.cli import main
from bench.config import load_config, parse_calibration, with_overrides
from bench.errors import InputError
from bench.results import read_run
from bench.search import build_index
from bench.testing import HashingEncoder
from bench.types import Role

KEYS = ["dim", "precision", "rescore_multiplier"]


def _run(toy_sweep, toy_tasks_dir, run_id, factory=None, **changes):
    config = with_overrides(load_config(toy_sweep), measure=False, bootstrap_resamples=50, **changes)
    kwargs = {"encoder_factory": factory} if factory else {}
    return read_run(runner.run(config, toy_tasks_dir, run_id=run_id, **kwargs))[1]


def test_a_calibration_sample_is_recorded_and_changes_only_calibrated_cells(toy_sweep, toy_tasks_dir):
    corpus = _run(toy_sweep, toy_tasks_dir, "corpus", precisions=("float32", "int8", "binary"))
    sample = _run(toy_sweep, toy_tasks_dir, "sample", precisions=("float32", "int8", "binary"),
                  calibration=parse_calibration("sample:3", "test"))  # fmt: skip
    int8 = sample[sample.precision == "int8"]
    assert set(int8.calibration) == {"sample:3"} and set(int8.calibration_vectors) == {3}
    assert set(corpus[corpus.precision == "int8"].calibration_vectors) == {6}
    others = sample[sample.precision != "int8"]
    assert set(others.calibration) == {"none"} and set(others.calibration_vectors) == {0}
    a, b = corpus.set_index(KEYS), sample.set_index(KEYS)
    assert (a.loc[a.index.get_level_values("precision") != "int8", "ndcg_at_10"]
            == b.loc[b.index.get_level_values("precision") != "int8", "ndcg_at_10"]).all()  # fmt: skip


def test_a_calibration_file_is_embedded_as_documents_by_the_same_model(toy_sweep, toy_tasks_dir, tmp_path):
    path = tmp_path / "calib.jsonl"
    path.write_text('{"title": "Owls", "text": "owls hunt at night"}\n\n{"text": "bees make honey"}\n'
                    '{"text": "otters float on their backs"}\n')  # fmt: skip
    seen = []

    class Spy(HashingEncoder):
        def encode(self, texts, role):
            seen.extend((role, t) for t in texts)
            return super().encode(texts, role)

    rows = _run(toy_sweep, toy_tasks_dir, "file", lambda m, b, n: Spy(m.dim), precisions=("float32", "int8"),
                calibration=parse_calibration(f"file:{path}", "test"))  # fmt: skip
    assert (Role.DOCUMENT, "Owls owls hunt at night") in seen and (Role.DOCUMENT, "bees make honey") in seen
    int8 = rows[rows.precision == "int8"]
    assert set(int8.calibration_vectors) == {3}
    assert int8.calibration.iloc[0].startswith("file:calib.jsonl@sha256:")


@pytest.mark.parametrize("value,message", [
    ("sample:7", "calibration sample of 7 vectors is larger than task Toy's corpus (6 documents)"),
    ("file:/nonexistent/calib.txt", "calib.txt: calibration file not found"),
])  # fmt: skip
def test_an_impossible_calibration_is_one_line_exit_2(toy_sweep, toy_tasks_dir, tmp_path, capsys, value, message):
    code = main(["run", str(toy_sweep), "--tasks-dir", str(toy_tasks_dir), "--calibration", value])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "results").exists()  # refused before anything is written


def test_each_rescore_multiplier_is_its_own_cell_and_row(toy_sweep, toy_tasks_dir):
    rows = _run(toy_sweep, toy_tasks_dir, "multipliers", precisions=("float32", "binary-rescore", "int8-rescore"),
                rescore_multipliers=(1, 2))  # fmt: skip
    rescored = rows[rows.precision.str.endswith("rescore")]
    assert sorted(set(rescored.rescore_multiplier)) == [1, 2] and len(rescored) == 2 * 2 * 3
    assert set(rows[rows.precision == "float32"].rescore_multiplier) == {0}
    assert not rows.duplicated(["dim", "precision", "rescore_multiplier"]).any()


def test_a_larger_multiplier_reranks_a_superset_of_candidates():
    rng = np.random.default_rng(0)
    docs, queries = rng.standard_normal((500, 48)).astype(np.float32), rng.standard_normal((5, 48)).astype(np.float32)
    few = build_index("binary-rescore", docs, 48, rescore_multiplier=1).search(queries, 10)
    many = build_index("binary-rescore", docs, 48, rescore_multiplier=10).search(queries, 10)
    # with m = 1 the candidates are the Hamming top-10 itself, only re-ordered; m = 10 can bring others in
    hamming_top = build_index("binary", docs, 48).search(queries, 10).indices
    assert all(set(a) == set(b) for a, b in zip(few.indices, hamming_top))
    assert (many.scores[:, 0] >= few.scores[:, 0]).all() and not np.array_equal(many.indices, few.indices)


def test_bad_calibration_values_name_where_they_came_from():
    with pytest.raises(InputError, match="--calibration: calibration must be corpus"):
        parse_calibration("most", "--calibration")


def test_cells_are_keyed_on_the_calibration_file_the_plan_read(toy_sweep, toy_tasks_dir, tmp_path, monkeypatch):
    """The texts are read once, when the run is planned; the file was hashed again each time a
    cell's identity was made, so an edit during the run filed cells fitted on the old texts under
    the new file's hash (and a later run reused them)."""
    from bench import calibration
    from bench.planning import plan

    path = tmp_path / "calib.txt"
    path.write_text("owls hunt at night\nbees make honey\n")
    config = with_overrides(load_config(toy_sweep), calibration=parse_calibration(f"file:{path}", "test"))
    the_plan = plan(config, toy_tasks_dir)
    read = calibration.describe(the_plan.config.calibration)
    path.write_text("otters float\nfoxes dig\n")  # edited while the run goes on
    assert calibration.describe(the_plan.config.calibration) == read != calibration.describe(config.calibration)
    assert the_plan.calibration_texts == {"line:1": "owls hunt at night", "line:2": "bees make honey"}
    real = calibration.read_texts

    def edited_while_read(p):
        texts = real(p)
        path.write_text("moles tunnel\nbats echo\n")
        return texts

    monkeypatch.setattr(calibration, "read_texts", edited_while_read)
    with pytest.raises(InputError, match=r"calib\.txt: the calibration file changed while it was read"):
        plan(config, toy_tasks_dir)
