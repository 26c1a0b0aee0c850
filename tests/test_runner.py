import json

import numpy as np
import pandas as pd
import pytest

from bench import runner, units
from bench.config import load_config, with_overrides
from bench.results import read_per_query, read_run
from bench.encoders import prompted
from bench.testing import HashingEncoder
from bench.types import Role

CELLS = 3 * 6  # dims [32, 16, 8] x 6 precisions


class CountingFactory:
    def __init__(self):
        self.encoders = []

    def __call__(self, model, backend, batch_size):
        enc = HashingEncoder(model.dim)
        self.encoders.append(enc)
        return enc

    def texts(self, role):
        return sum(n for e in self.encoders for r, n in e.calls if r is role)


def refuse(*_):
    raise AssertionError("the model should not be loaded: everything is cached")


def test_sweep_encodes_once_and_evaluates_every_cell(toy_sweep, toy_tasks_dir):
    factory = CountingFactory()
    config = with_overrides(load_config(toy_sweep), measure=False)  # count encodes, not timing passes
    run_dir = runner.run(config, toy_tasks_dir, encoder_factory=factory)
    assert len(factory.encoders) == 1
    assert factory.texts(Role.DOCUMENT) == 6 and factory.texts(Role.QUERY) == 3
    manifest, rows = read_run(run_dir)
    assert len(rows) == CELLS
    assert not rows.duplicated(["model", "task", "backend", "dim", "precision"]).any()
    ref = rows[(rows.dim == 32) & (rows.precision == "float32")].iloc[0]
    assert ref.retention == 1.0 and ref.main_score == ref.ndcg_at_10
    np.testing.assert_allclose(rows.retention, rows.main_score / ref.main_score)
    assert set(rows.bytes_per_vector[rows.dim == 16]) == {64, 32, 16, 2}
    assert manifest["status"] == "finished" and manifest["schema_version"] == 1
    assert manifest["config"]["dims"] == [32, 16, 8] and "git_sha" in manifest
    assert {"cpu", "python"} <= set(manifest["machine"]) and "numpy" in manifest["packages"]
    per_query = read_per_query(run_dir)
    assert len(per_query) == CELLS * 3
    means = per_query.groupby(["dim", "precision"]).ndcg_at_10.mean()
    for _, row in rows.iterrows():
        assert means[(row.dim, row.precision)] == pytest.approx(row.ndcg_at_10, abs=1e-12)
    assert (run_dir / "rows.csv").is_file()
    assert not list(run_dir.rglob("*.tmp"))


def test_rerun_and_new_cells_encode_nothing(toy_sweep, toy_tasks_dir):
    config = load_config(toy_sweep)
    first = runner.run(config, toy_tasks_dir, encoder_factory=CountingFactory())
    more = with_overrides(config, dims=(32, 24, 4), precisions=config.precisions[:2])
    second = runner.run(more, toy_tasks_dir, encoder_factory=refuse)
    _, a = read_run(first)
    _, b = read_run(second)
    shared = a.merge(b, on=["dim", "precision"], suffixes=("_a", "_b"))
    assert len(shared) == 2 and (shared.ndcg_at_10_a == shared.ndcg_at_10_b).all()
    assert set(b.dim) == {32, 24, 4}


def test_reference_cell_is_added_when_full_width_is_not_swept(toy_sweep, toy_tasks_dir):
    config = with_overrides(load_config(toy_sweep), dims=(8,))
    _, rows = read_run(runner.run(config, toy_tasks_dir, encoder_factory=CountingFactory()))
    assert len(rows) == 7 and ((rows.dim == 32) & (rows.precision == "float32")).sum() == 1


def test_same_run_id_resumes_from_finished_cells(toy_sweep, toy_tasks_dir):
    config = load_config(toy_sweep)
    run_dir = runner.run(config, toy_tasks_dir, run_id="r1", encoder_factory=CountingFactory())
    cell = next((run_dir / "cells").glob("*binary-rescore__m4.json"))
    record = json.loads(cell.read_text())
    record.pop(units.CHECKSUM)
    record["metrics"]["ndcg_at_10"] = 0.123  # a finished cell (with its checksum) is reused, not recomputed
    cell.write_text(json.dumps({**record, units.CHECKSUM: units._checksum(record)}, indent=2))
    runner.run(config, toy_tasks_dir, run_id="r1", encoder_factory=refuse)
    _, rows = read_run(run_dir)
    assert 0.123 in set(rows.ndcg_at_10)


@pytest.mark.parametrize("where", ["run", "cache"])
@pytest.mark.parametrize("damage", ["one digit", "truncated"])
def test_a_damaged_cell_file_is_evaluated_again_never_read_as_scores(toy_sweep, toy_tasks_dir, tmp_path, caplog,
                                                                     where, damage):  # fmt: skip
    """A digit of a stored nDCG changed on disk (0.7 -> 0.8 reads as a plausible score), or a file
    cut short: in the run folder (a resume) or in the cell cache (another run id)."""
    config = load_config(toy_sweep)
    run_dir = runner.run(config, toy_tasks_dir, run_id="r1", encoder_factory=CountingFactory())
    _, fresh = read_run(run_dir)
    folder = run_dir / "cells" if where == "run" else config.cache_dir / "cells"
    for cell in folder.glob("*.json"):
        text = cell.read_text()
        start = text.index('"ndcg_at_10": ') + len('"ndcg_at_10": ')
        digit = text[start + 2]  # the first decimal of 0.xxx (or of 1.0)
        damaged = text[: start + 2] + str((int(digit) + 1) % 10) + text[start + 3 :]
        cell.write_text(damaged if damage == "one digit" else text[: len(text) // 2])
    if where == "cache":
        for cell in (run_dir / "cells").glob("*.json"):
            cell.unlink()  # nothing to resume from: every cell comes from the cache or is evaluated
    runner.run(config, toy_tasks_dir, run_id="r1" if where == "run" else "r2", encoder_factory=CountingFactory())
    _, again = read_run(run_dir if where == "run" else run_dir.parent / "r2")
    key = ["dim", "precision", "rescore_multiplier"]
    merged = fresh.merge(again, on=key, suffixes=("", "_again"))
    assert len(merged) == len(fresh) and (merged.ndcg_at_10 == merged.ndcg_at_10_again).all()
    assert "evaluating that cell again" in caplog.text


def test_a_cell_file_of_another_task_identity_is_evaluated_again(toy_sweep, toy_tasks_dir):
    config = load_config(toy_sweep)
    run_dir = runner.run(config, toy_tasks_dir, run_id="r1", encoder_factory=CountingFactory())
    cell = next((run_dir / "cells").glob("*binary-rescore*.json"))
    record = json.loads(cell.read_text())
    record["metrics"]["ndcg_at_10"] = 0.123
    record["identity"]["split"] = "dev"  # written for another split: not this cell's result
    cell.write_text(json.dumps(record))
    runner.run(config, toy_tasks_dir, run_id="r1", encoder_factory=refuse)
    _, rows = read_run(run_dir)
    assert 0.123 not in set(rows.ndcg_at_10) and set(rows.split) == {"test"}


def test_cell_file_names_are_injective():
    from bench.types import Cell

    a = Cell("m", "mteb:T/en@x_y", "torch-cpu-float32", 8, "float32")
    b = Cell("m", "mteb:T/en_x@y", "torch-cpu-float32", 8, "float32")
    assert a.key != b.key and a.key.startswith("m__mteb-T-en-x-y__torch-cpu-float32__8__float32-")
    assert all(c.isalnum() or c in "._+-" for c in a.key + b.key)


def test_prompts_reach_the_encoder_and_roles_never_share_vectors(tmp_path, toy_sweep, toy_tasks_dir):
    from bench.testing import write_models
    from tests.conftest import TOY_MODEL

    write_models(toy_tasks_dir, {"toy": {**TOY_MODEL, "prompts": {"query": "query: ", "document": "passage: "}}})
    seen = []

    class Spy(HashingEncoder):  # records what the encoder hashes: the texts with the model's prompt
        def encode(self, texts, role):
            seen.extend((role, t) for t in prompted(texts, self.prompts, role))
            return super().encode(texts, role)

    runner.run(load_config(toy_sweep), toy_tasks_dir, encoder_factory=lambda m, b, n: Spy(m.dim, dict(m.prompts)))
    assert all(t.startswith("query: ") for r, t in seen if r is Role.QUERY)
    assert all(t.startswith("passage: ") for r, t in seen if r is Role.DOCUMENT)


def test_rows_are_identical_run_after_run(toy_sweep, toy_tasks_dir):
    config = load_config(toy_sweep)
    _, a = read_run(runner.run(config, toy_tasks_dir, encoder_factory=CountingFactory()))
    _, b = read_run(runner.run(config, toy_tasks_dir, encoder_factory=CountingFactory()))
    metrics = [c for c in a.columns if c.endswith(tuple(f"_at_{k}" for k in (1, 10, 1000)))]
    pd.testing.assert_frame_equal(a[metrics], b[metrics])


@pytest.mark.parametrize("output,message", [
    (lambda n, d: np.full((n, d), np.nan, np.float32), "NaN or Inf"),
    (lambda n, d: np.zeros((n, d + 1), np.float32), "width 33, expected 32"),
    (lambda n, d: np.zeros((n - 1, d), np.float32), "for 6 texts"),
])  # fmt: skip
def test_unusable_vectors_fail_clearly_and_leave_no_run_folder(toy_sweep, toy_tasks_dir, tmp_path, output, message):
    from bench.errors import EncoderError

    class Broken(HashingEncoder):
        def encode(self, texts, role):
            return output(len(texts), 32)

    with pytest.raises(EncoderError, match=message) as info:
        runner.run(load_config(toy_sweep), toy_tasks_dir, encoder_factory=lambda *_: Broken())
    assert info.value.exit_code == 3
    assert not (tmp_path / "results").exists()  # the output folder was made by this run: nothing left


def test_costs_are_measured_once_per_backend_and_reused_from_the_cache(toy_sweep, toy_tasks_dir):
    factory = CountingFactory()
    run_dir = runner.run(load_config(toy_sweep), toy_tasks_dir, encoder_factory=factory)
    _, rows = read_run(run_dir)
    for column in ("documents_per_second", "tokens_per_second", "query_latency_p50_ms", "query_latency_p95_ms",
                   "peak_rss_bytes", "load_seconds", "search_queries_per_second", "search_latency_p95_ms"):
        assert (rows[column] > 0).all(), column
    assert (rows.query_latency_p95_ms >= rows.query_latency_p50_ms).all()
    assert rows.documents_per_second.nunique() == 1  # one measurement serves every cell
    assert rows.mean_tokens_per_document.iloc[0] > 3
    ranges = (rows.precision == "int8") * 2 * 4 * rows.dim  # int8 keeps its float32 low/high per dimension
    assert (rows.index_bytes == rows.bytes_per_vector * 6 + ranges).all()
    # a larger grid on a warm cache loads nothing: the measurement is reused
    more = with_overrides(load_config(toy_sweep), dims=(32, 4))
    _, again = read_run(runner.run(more, toy_tasks_dir, encoder_factory=refuse))
    assert set(again.documents_per_second) == set(rows.documents_per_second)
    # another batch size is another measurement: timed again, never the batch-64 figures
    other = with_overrides(load_config(toy_sweep), batch_size=1)
    _, timed = read_run(runner.run(other, toy_tasks_dir, encoder_factory=CountingFactory()))
    assert set(timed.documents_per_second).isdisjoint(set(rows.documents_per_second))
    assert set(timed.cost_measured_at).isdisjoint(set(rows.cost_measured_at))


def test_every_cell_of_a_task_carries_the_runs_one_cost_measurement(toy_sweep, toy_tasks_dir):
    """A run that loads the model (another task needs encoding) measures the costs again; the cells
    it reuses from an earlier run then carry that measurement too, not the one stored with them."""
    from bench.testing import write_beir_task
    from tests.conftest import TOY_CORPUS, TOY_QRELS, TOY_QUERIES

    first = with_overrides(load_config(toy_sweep), precisions=("float32",))
    _, before = read_run(runner.run(first, toy_tasks_dir, encoder_factory=CountingFactory()))
    corpus = {f"x{k}": (title, f"{text} again") for k, (title, text) in TOY_CORPUS.items()}  # texts to encode
    write_beir_task(toy_tasks_dir, "Another", corpus, TOY_QUERIES,
                    {q: {f"x{d}": r for d, r in j.items()} for q, j in TOY_QRELS.items()})  # fmt: skip
    second = with_overrides(load_config(toy_sweep), tasks=("Another", "Toy"), precisions=("float32", "int8"))
    _, rows = read_run(runner.run(second, toy_tasks_dir, encoder_factory=CountingFactory()))
    toy = rows[rows.task == "Toy"]
    for column in ("documents_per_second", "cost_measured_at", "peak_rss_bytes", "load_seconds"):
        assert toy[column].nunique() == 1, column
    assert set(toy.cost_measured_at).isdisjoint(set(before.cost_measured_at))  # measured again, for all


def test_timings_of_another_machine_or_search_engine_are_measured_again(toy_sweep, toy_tasks_dir, monkeypatch):
    """Costs and search timings are keyed on where they were measured: the CPU, the CPUs and
    threads allowed, the search engine. A cached rerun under other settings times again."""
    from bench import search

    config = load_config(toy_sweep)
    _, rows = read_run(runner.run(config, toy_tasks_dir, encoder_factory=CountingFactory()))
    _, same = read_run(runner.run(config, toy_tasks_dir, encoder_factory=refuse))
    assert set(same.evaluated_at) == set(rows.evaluated_at) and set(same.cost_measured_at) == set(rows.cost_measured_at)
    from bench import environment

    for change in ("threads", "engine"):
        with monkeypatch.context() as m:
            if change == "threads":  # as started with OMP_NUM_THREADS=N (a library may set it later)
                threads = environment.LAUNCH_THREADS.get("OMP_NUM_THREADS")
                m.setattr(environment, "LAUNCH_THREADS", {"OMP_NUM_THREADS": "3" if threads != "3" else "5"})
            else:
                m.setattr(search, "ENGINE", "numpy" if search.ENGINE == "faiss" else "faiss")
            _, other = read_run(runner.run(config, toy_tasks_dir, encoder_factory=CountingFactory()))
        assert set(other.evaluated_at).isdisjoint(set(rows.evaluated_at)), change
        if change == "threads":
            assert set(other.cost_measured_at).isdisjoint(set(rows.cost_measured_at))


def test_every_metric_of_every_cell_has_a_seeded_confidence_interval(toy_sweep, toy_tasks_dir):
    import pandas as pd

    config = with_overrides(load_config(toy_sweep), measure=False, bootstrap_resamples=200)
    run_dir = runner.run(config, toy_tasks_dir)
    intervals = pd.read_parquet(run_dir / "intervals.parquet")
    assert len(intervals) == CELLS * 42
    assert ((intervals.ci_low <= intervals["mean"] + 1e-12) & (intervals["mean"] <= intervals.ci_high + 1e-12)).all()
    again = pd.read_parquet(runner.run(config, toy_tasks_dir) / "intervals.parquet")
    pd.testing.assert_frame_equal(intervals, again)
    _, rows = read_run(run_dir)
    ref = rows[(rows.dim == 32) & (rows.precision == "float32")].iloc[0]
    assert ref.vs_reference_difference == 0 and ref.vs_reference_p_value == 1 and not ref.significantly_worse
    assert (rows.main_score_ci_low <= rows.main_score).all() and (rows.main_score <= rows.main_score_ci_high).all()
    assert set(rows.vs_reference_p_value.between(0, 1)) == {True}


def test_a_failed_rerun_of_a_finished_run_leaves_it_finished(toy_sweep, toy_tasks_dir, tmp_path):
    """Resuming a finished run that then fails (here: its vectors gone, the model broken) keeps
    the finished manifest, listed and queryable, until a rerun replaces its results."""
    import shutil

    from bench.errors import EncoderError

    config = load_config(toy_sweep)
    run_dir = runner.run(config, toy_tasks_dir, run_id="kept")
    before = json.loads((run_dir / "manifest.json").read_text())
    shutil.rmtree(tmp_path / "cache")

    def broken(*_):
        raise EncoderError("the model is broken")

    with pytest.raises(EncoderError):
        runner.run(config, toy_tasks_dir, run_id="kept", encoder_factory=broken)
    after = json.loads((run_dir / "manifest.json").read_text())
    assert after["status"] == "finished" and after["started_at"] == before["started_at"]


def test_reused_cells_carry_the_registrys_current_entry(toy_sweep, toy_tasks_dir):
    """A parameter count or token limit changed in the registry (which changes no hashing vector)
    shows in every row of the next run, reused cells included, as in its manifest."""
    from bench.testing import write_models
    from tests.conftest import TOY_MODEL

    config = load_config(toy_sweep)
    runner.run(config, toy_tasks_dir)
    write_models(toy_tasks_dir, {"toy": {**TOY_MODEL, "n_parameters": 12345}})
    run_dir = runner.run(config, toy_tasks_dir, encoder_factory=refuse)
    _, rows = read_run(run_dir)
    assert rows.registry_parameters.tolist() == [12345] * len(rows)
    assert json.loads((run_dir / "manifest.json").read_text())["models"]["toy"]["n_parameters"] == 12345


def test_load_seconds_leave_out_a_one_time_export():
    """An export or quantization built on first use (seconds) is not the model's load time,
    which later runs, reading the export back, would never see."""
    import time

    from bench.embed import LazyEncoder
    from bench.encoders.exported import building

    def factory():
        building(time.sleep, 0.5)  # the export
        time.sleep(0.05)  # the load
        return HashingEncoder(8)

    lazy = LazyEncoder(factory)
    lazy.get()
    assert 0.04 < lazy.load_seconds < 0.3
