"""``bench reproduce``: run a suite and compare it with a reference table of published scores.

A suite (``tasks/suites/<name>.yaml``) names a model, a reference CSV (columns as in
``tasks/references/mteb_published_scores.csv``), the rows of it to use (``reference_model``), the
precision and backend that match how the reference was produced, and a tolerance. Every
(task, split, subset) row is run at the model's full dimension; a task bench declares is used as
declared, any other loads through MTEB. Each task gets published, measured, delta and
pass/fail; a task that cannot run is an error, which fails the suite too.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from bench import results, runner
from bench.config import SweepConfig, default_cache_dir, parse_precision
from bench.encoders import parse_backend
from bench.errors import BenchError, InputError
from bench.models import model_registry
from bench.paths import default_tasks_dir
from bench.tasks import task_registry
from bench.yamlio import check_keys, load_yaml, require_mapping, typed

log = logging.getLogger(__name__)
SUITE_KEYS = ("name", "model", "reference", "reference_model", "precision", "backend", "tolerance", "tasks")
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

    @property
    def delta(self) -> float | None:
        return None if self.measured is None else self.measured - self.published

    @property
    def status(self) -> str:
        if self.measured is None:
            return "error"
        return "pass" if abs(self.delta) <= self.tolerance else "fail"


def read_reference(path: Path, model: str, tasks: list[str] | None) -> list[dict]:
    """Rows of the reference CSV for ``model`` (optionally only ``tasks``), checked line by line."""
    try:
        handle = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise InputError(f"{path}: reference file not found") from None
    rows = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REFERENCE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}:1: reference is missing columns {missing}")
        for row in reader:
            try:
                row["main_score"] = float(row["main_score"])
            except ValueError:
                raise InputError(f"{path}:{reader.line_num}: main_score {row['main_score']!r} is not a number") from None
            if row["model"] == model and (not tasks or row["task"] in tasks):
                rows.append(row)
    if not rows:
        raise InputError(f"{path}: no rows for model {model!r}")
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
    check_keys(raw, SUITE_KEYS, required=("model", "reference", "reference_model", "precision"))
    return {
        "name": typed(raw, "name", str, path.stem), "model": typed(raw, "model", str),
        "reference": (path.parent / typed(raw, "reference", str)).resolve(),
        "reference_model": typed(raw, "reference_model", str),
        "precision": parse_precision(typed(raw, "precision", str), raw.where("precision")),
        "backend": parse_backend(typed(raw, "backend", (str, dict), "torch"), raw.where("backend")),
        "tolerance": float(typed(raw, "tolerance", (int, float), 0.005)),
        "tasks": list(typed(raw, "tasks", list, [])),
    }  # fmt: skip


def task_name_for(row: dict, tasks_dir: Path | None) -> str:
    """A declared task when bench has one for this (task, split, subset), else MTEB's."""
    registry = task_registry(tasks_dir)
    if row["task"] in registry.names():
        spec = registry.get(row["task"])
        if spec.split == row["split"] and spec.subset == (row["subset"] or "default"):
            return row["task"]
    return f"mteb:{row['task']}/{row['subset'] or 'default'}@{row['split']}"


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
        )  # fmt: skip
        try:
            _, rows = results.read_run(runner.run(config, tasks_dir))
            cell = rows[(rows.dim == model.dim) & (rows.precision == suite["precision"])].iloc[0]
            outcomes.append(Outcome(row["task"], row["split"], row["subset"], row["main_score"], float(cell.main_score), tol))
        except BenchError as exc:
            outcomes.append(Outcome(row["task"], row["split"], row["subset"], row["main_score"], None, tol, str(exc)))
    return outcomes


def outcome_table(outcomes: list[Outcome]) -> str:
    lines = ["| task | split | subset | published | measured | delta | status |", "|---|---|---|---:|---:|---:|---|"]
    for o in outcomes:
        measured = f"{o.measured:.5f}" if o.measured is not None else "–"
        delta = f"{o.delta:+.5f}" if o.delta is not None else o.error[:80]
        lines.append(f"| {o.task} | {o.split} | {o.subset} | {o.published:.5f} | {measured} | {delta} | {o.status} |")
    passed = sum(o.status == "pass" for o in outcomes)
    lines.append(f"\n{passed}/{len(outcomes)} within ±{outcomes[0].tolerance if outcomes else 0}")
    return "\n".join(lines)
