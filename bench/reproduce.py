"""``bench reproduce``: run a suite and compare it with a reference table of published scores.

A suite (``tasks/suites/<name>.yaml``) names a model, a reference CSV (columns as in
``tasks/references/mteb_published_scores.csv``), the rows of it to use (``reference_model``), the
precision and backend that match how the reference was produced, and a tolerance. Every
(task, split, subset) row is run at the model's full dimension; a task bench declares is used as
declared, any other loads through MTEB. Each reference row is compared with the run's row of the
same task, split and subset, on that task's own main score (from MTEB's metadata, e.g. nDCG@1
for LEMBPasskeyRetrieval); it gets published, measured, delta and pass/fail; a task that cannot
run is an error, which fails the suite too. A row whose reference scored another dataset or model
revision is "other data", and every row of a ``--limit`` run "limited": neither passes.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from bench import contexts, results, runner
from bench.config import SweepConfig, default_cache_dir, parse_precision
from bench.encoders import parse_backend
from bench.errors import BenchError, InputError, Unavailable, did_you_mean
from bench.models import model_registry
from bench.paths import default_tasks_dir
from bench.tasks import task_registry
from bench.schemas import SuiteSchema, validated
from bench.yamlio import load_yaml, require_mapping

log = logging.getLogger(__name__)
REFERENCE_COLUMNS = ("model", "task", "split", "subset", "main_score")


@dataclass(frozen=True)
class Outcome:
    task: str
    split: str
    subset: str
    published: float
    measured: float | None
    tolerance: float
    error: str = ""
    main_score_name: str = ""  # the task's own main score, which both numbers are
    run_dir: str = ""  # where the run of this row was written
    other_data: str = ""  # how the dataset or model the run scored differs from the reference's (a revision)
    limit: int | None = None  # a --limit smoke run: a subset of the task, never a reproduction

    @property
    def delta(self) -> float | None:
        return None if self.measured is None else self.measured - self.published

    @property
    def status(self) -> str:
        if self.measured is None:
            return "error"
        if self.limit:
            return "limited"  # the first `limit` judged queries and a cut corpus: not the published task
        if self.other_data:
            return "other data"  # neither a pass nor a fail: the two numbers score different datasets
        return "pass" if abs(self.delta) <= self.tolerance else "fail"


def read_reference(path: Path, model: str, tasks: list[str] | None) -> list[dict]:
    """Rows of the reference CSV for ``model`` (optionally only ``tasks``), checked line by line."""
    try:
        handle = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise InputError(f"{path}: reference file not found") from None
    rows, names = [], set()
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REFERENCE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}:1: reference is missing columns {missing}")
        for row in reader:
            text = row["main_score"]
            try:
                row["main_score"] = float(text)
            except (TypeError, ValueError):
                row["main_score"] = float("nan")
            if not math.isfinite(row["main_score"]):
                raise InputError(f"{path}:{reader.line_num}: main_score {text!r} is not a finite number")
            if row["model"] == model:
                names.add(row["task"])  # every task the model has, for a suite task it lacks
                if not tasks or row["task"] in tasks:
                    rows.append(row)
    if not names:
        raise InputError(f"{path}: no rows for model {model!r} (see tasks/references/README.md for what each file holds)")
    found = {r["task"] for r in rows}
    absent = [t for t in dict.fromkeys(tasks or []) if t not in found]
    if absent:
        raise InputError(f"{path}: the suite's task {absent[0]!r} has no row for model {model!r}"
                         f"{did_you_mean(absent[0], sorted(names))}" + (f" ({len(absent)} such tasks: {', '.join(absent)})"
                                                                 if len(absent) > 1 else ""))  # fmt: skip
    return rows



def load_suite(name_or_path: str, tasks_dir: Path | None = None) -> dict:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        suites = (tasks_dir or default_tasks_dir()) / "suites"
        path = suites / f"{name_or_path}.yaml"
        if not path.is_file():
            from bench.errors import unknown

            raise unknown("suite", name_or_path, [p.stem for p in suites.glob("*.yaml")])
    raw = require_mapping(load_yaml(path), str(path))
    suite = validated(SuiteSchema, raw, str(path))
    return {
        "name": suite.name or path.stem, "model": suite.model,
        "reference": (path.parent / suite.reference).resolve(), "reference_model": suite.reference_model,
        "precision": parse_precision(suite.precision, raw.where("precision")),
        "backend": parse_backend(suite.backend, raw.where("backend")),
        "tolerance": suite.tolerance, "tasks": list(suite.tasks),
        "context": contexts.parse(suite.context, raw.where("context")),
    }  # fmt: skip


def task_name_for(row: dict, tasks_dir: Path | None) -> str:
    """A declared task when bench has one for this (task, split, subset), else MTEB's."""
    registry = task_registry(tasks_dir)
    if row["task"] in registry.names():
        spec = registry.get(row["task"])
        if spec.split == row["split"] and spec.subset == (row["subset"] or "default"):
            return row["task"]
    return f"mteb:{row['task']}/{row['subset'] or 'default'}@{row['split']}"


def measured_row(rows, ref: dict, dim: int, precision: str, context: str = "independent"):
    """The run's row for a reference row: its own task, split and subset, at the suite's cell."""
    same_task = (rows.task_name == ref["task"]) & (rows.split == ref["split"]) & (rows.subset == (ref["subset"] or "default"))
    match = rows[same_task & (rows.dim == dim) & (rows.precision == precision) & (rows.context == context)]
    if len(match) != 1:
        raise InputError(f"{ref['task']} {ref['split']}/{ref['subset']}: the run has {len(match)} rows for it, not 1")
    row = match.iloc[0]
    declared = ref.get("main_score_name") or "main_score"
    if declared != "main_score" and declared != row.main_score_name:
        raise InputError(f"{ref['task']}: the reference is {declared}, the task's main score is {row.main_score_name}")
    return row


def other_revision(ref: dict, cell) -> str:
    """Where the reference names the dataset revision it scored, or the model revision that scored
    it, and the run another one, what differs ("" when both are the same, or either is not known)."""
    differences = []
    for what in ("dataset", "model"):
        column = f"{what}_revision"
        published, scored = str(ref.get(column) or "").strip(), str(cell.get(column) or "").strip()
        if published and scored and published != scored:
            differences.append(f"the reference scored {what} revision {published}, the run {scored}")
    return "; ".join(differences)


def reproduce(suite: dict, output_dir: Path, cache_dir: Path | None = None, tolerance: float | None = None,
              backend=None, limit: int | None = None, tasks_dir: Path | None = None) -> list[Outcome]:  # fmt: skip
    """Run every reference row of the suite and compare."""
    model = model_registry(tasks_dir).get(suite["model"])
    tol = suite["tolerance"] if tolerance is None else tolerance
    outcomes = []
    for row in read_reference(suite["reference"], suite["reference_model"], suite["tasks"]):
        config = SweepConfig(
            models=(model.key,), tasks=(task_name_for(row, tasks_dir),), backends=(backend or suite["backend"],),
            dims=(model.dim,), precisions=(suite["precision"],), output_dir=output_dir,
            cache_dir=cache_dir or default_cache_dir(), limit=limit, measure=False, name=f"reproduce-{suite['name']}",
            contexts=(suite.get("context", "independent"),),
        )  # fmt: skip
        try:
            run_dir = runner.run(config, tasks_dir)
            _, rows = results.read_run(run_dir)
            cell = measured_row(rows, row, model.dim, suite["precision"], suite.get("context", "independent"))
            outcomes.append(Outcome(row["task"], row["split"], row["subset"], row["main_score"], float(cell.main_score),
                                    tol, main_score_name=str(cell.main_score_name), run_dir=str(run_dir),
                                    other_data=other_revision(row, cell), limit=limit))  # fmt: skip
        except Unavailable:
            raise  # the hub, a GPU or the weights are missing: every other row would fail the same way
        except BenchError as exc:
            outcomes.append(Outcome(row["task"], row["split"], row["subset"], row["main_score"], None, tol, str(exc)))
    return outcomes


def outcome_table(outcomes: list[Outcome]) -> str:
    lines = ["| task | split | subset | main score | published | measured | delta | status |",
             "|---|---|---|---|---:|---:|---:|---|"]  # fmt: skip
    for o in outcomes:
        measured = f"{o.measured:.5f}" if o.measured is not None else "–"
        delta = f"{o.delta:+.5f}" if o.delta is not None else "–"
        main = o.main_score_name or "–"
        lines.append(f"| {o.task} | {o.split} | {o.subset} | {main} | {o.published:.5f} | {measured} | {delta} | {o.status} |")
    passed = sum(o.status == "pass" for o in outcomes)
    lines.append(f"\n{passed}/{len(outcomes)} within ±{outcomes[0].tolerance if outcomes else 0}")
    errors = [f"- {o.task} {o.split} {o.subset}: {o.error}" for o in outcomes if o.error]
    if errors:
        lines += ["", "errors (each in full):", *errors]
    other = [f"- {o.task} {o.split} {o.subset}: {o.other_data}" for o in outcomes if o.other_data]
    if other:
        lines += ["", "other data (not compared: the run's dataset or model is not the reference's):", *other]
    limited = [o for o in outcomes if o.status == "limited"]
    if limited:
        lines += ["", (f"limited ({len(limited)} rows, not compared): --limit {limited[0].limit} scored the first "
                       f"{limited[0].limit} judged queries of each task over a cut corpus, not the published task")]  # fmt: skip
    return "\n".join(lines)
