"""Runs side by side: one table per task with every shared cell, differences and paired tests.

Two ways to line runs up (``across``):

- ``runs``: each run is a side; a cell is (model, backend, dimension, precision, rescore
  multiplier); each later run is compared with the first (this week's run against last month's).
- ``models``: each dense (model, backend) of the runs is a side; a cell is (dimension, precision,
  rescore multiplier); each later model is compared with the first (this model against that one).

Two cells are compared only when they are truly comparable: the same task data (the manifests'
task digest), split, subset and main score; the test is paired over the queries both scored (a
sign-flip permutation test on the main score, ``bench.stats``), and the p-values of one side's
comparisons in one table are Holm-adjusted together. Cells that only some sides have are listed.
Nothing here writes into a run folder.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench import results, stats
from bench.cells import cell_label, is_lexical
from bench.errors import InputError
from bench.layout import PRECISION_ORDER, has_contexts
from bench.modelsize import with_parameters

RUN_KEYS = ("model", "backend", "dim", "precision", "rescore_multiplier")
MODEL_KEYS = ("dim", "precision", "rescore_multiplier")
SAME_TASK = ("split", "subset", "main_score_name")  # besides the task digest


@dataclass(frozen=True)
class Side:
    """One column of a comparison: a run, or one (model, backend) of a run."""

    label: str
    run_id: str
    rows: pd.DataFrame
    per_query: pd.DataFrame
    task_digests: dict
    manifest: dict = field(default_factory=dict, repr=False)


def expand_runs(patterns: list[str]) -> list[Path]:
    """Run folders from paths or glob patterns (a pattern's matches in order of their start time);
    a run named twice is an error, as is a pattern that matches nothing."""
    out: list[Path] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matches = [Path(p) for p in glob.glob(pattern) if (Path(p) / results.MANIFEST).is_file()]
            if not matches:
                raise InputError(f"{pattern!r} matches no run folder")
            out += sorted(matches, key=lambda p: (str(results.read_manifest(p).get("started_at") or ""), p.name))
        else:
            out.append(Path(pattern))
    resolved = [p.resolve() for p in out]
    duplicates = sorted({str(p) for p in out if resolved.count(p.resolve()) > 1})
    if duplicates:
        raise InputError(f"run {duplicates[0]} is named more than once")
    if len(out) < 2:
        raise InputError("compare needs at least two runs")
    return out


def _load(run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    manifest, rows = results.read_run(run_dir)
    return manifest, with_parameters(rows, manifest), results.read_per_query(run_dir)


def run_sides(run_dirs: list[Path]) -> list[Side]:
    """Each run as one side, labelled by its run id."""
    sides = []
    for run_dir in run_dirs:
        manifest, rows, per_query = _load(run_dir)
        sides.append(Side(str(manifest["run_id"]), str(manifest["run_id"]), rows, per_query,
                          manifest.get("task_digests", {}), manifest))  # fmt: skip
    if len({s.label for s in sides}) < len(sides):
        raise InputError("two of the runs have the same run id; compare needs runs it can tell apart")
    return sides


def model_sides(run_dirs: list[Path]) -> tuple[list[Side], list[str], pd.DataFrame]:
    """Each dense (model, backend) of the runs as one side, in the order met; a group found in
    several runs is taken from the newest (noted). Also the lexical baselines' rows."""
    found: dict[tuple, Side] = {}
    notes, lexical = [], []
    for run_dir in run_dirs:
        manifest, rows, per_query = _load(run_dir)
        lexical.append(rows[is_lexical(rows)].assign(run_id=manifest["run_id"]))
        for (model, backend), group in rows[~is_lexical(rows)].groupby(["model", "backend"], sort=False):
            side = Side(f"{model} ({backend})", str(manifest["run_id"]), group, per_query,
                        manifest.get("task_digests", {}), manifest)  # fmt: skip
            old = found.get((model, backend))
            if old is not None:
                newer = side if _started(side) >= _started(old) else old
                notes.append(f"{side.label} is in runs {old.run_id} and {side.run_id}; shown from {newer.run_id} (newer)")
                side = newer
            found[(model, backend)] = side
    if len(found) < 2:
        raise InputError("compare --across models needs at least two (model, backend) pairs in the runs")
    return list(found.values()), notes, pd.concat(lexical, ignore_index=True)


def _started(side: Side) -> str:
    return str(side.manifest.get("started_at") or "")


@dataclass(frozen=True)
class Versus:
    """One side's cell against the first side's, on the main score, paired by query."""

    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    n_queries: int = 0
    problem: str = ""  # why the cells were not compared ("" when they were)

    @property
    def mark(self) -> str:
        if self.p_holm is None or self.p_holm >= stats.ALPHA or not self.difference:
            return ""
        return "▼" if self.difference < 0 else "▲"


@dataclass(frozen=True)
class Line:
    """One cell key of a task table: each side's main score (None where it lacks the cell) and
    each later side's comparison with the first."""

    key: dict
    scores: list
    versus: list  # one Versus (or None when either side lacks the cell) per side after the first


@dataclass(frozen=True)
class TaskTable:
    task: str
    main_score_name: str
    key_columns: tuple
    lines: list

    def unshared(self) -> list[Line]:
        return [line for line in self.lines if any(s is None for s in line.scores)]


@dataclass(frozen=True)
class Report:
    """A whole comparison: its sides, one table per task, notes, and the lexical baselines seen."""

    across: str
    sides: list
    tables: list
    notes: list = field(default_factory=list)
    lexical: pd.DataFrame | None = None


def _cell(side: Side, task: str, key: dict) -> pd.Series | None:
    rows = side.rows[side.rows.task == task]
    for column, value in key.items():
        rows = rows[rows[column] == value]
    return None if rows.empty else rows.iloc[0]


def _comparable(base: Side, other: Side, task: str, a: pd.Series, b: pd.Series) -> str:
    """Why two cells of a task cannot be compared ("" when they can)."""
    da, db = base.task_digests.get(task), other.task_digests.get(task)
    if da and db and da != db:
        return "task data differs"
    for column in SAME_TASK:
        va, vb = a.get(column), b.get(column)
        if pd.notna(va) and pd.notna(vb) and va != vb:
            return f"{column.replace('_', ' ')} differs ({va} / {vb})"
    return ""


def _versus(base: Side, other: Side, task: str, a: pd.Series, b: pd.Series, seed: int) -> Versus:
    """``b`` (other) against ``a`` (base) over the queries both scored."""
    problem = _comparable(base, other, task, a, b)
    if problem:
        return Versus(problem=problem)
    metric = a["main_score_name"]
    sa = stats.cell_scores(base.per_query, a, metric)
    sb = stats.cell_scores(other.per_query, b, metric)
    shared = sa.index.intersection(sb.index)
    if len(shared) == 0:
        return Versus(problem="no shared queries")
    va, vb = sa.loc[shared].to_numpy(dtype=np.float64), sb.loc[shared].to_numpy(dtype=np.float64)
    if not (np.isfinite(va).all() and np.isfinite(vb).all()):
        return Versus(problem="per-query scores are not finite")
    cmp = stats.paired_comparison(vb, va, seed=seed)
    return Versus(cmp.mean_difference, cmp.ci_low, cmp.ci_high, cmp.p_value, None, cmp.n_queries)


def _with_holm(versus: list[Versus | None]) -> list[Versus | None]:
    """The family of one side's comparisons in one table, Holm-adjusted together."""
    tested = [i for i, v in enumerate(versus) if v is not None and v.p_value is not None]
    adjusted = stats.holm([versus[i].p_value for i in tested])
    out = list(versus)
    for i, p in zip(tested, adjusted):
        v = versus[i]
        out[i] = Versus(v.difference, v.ci_low, v.ci_high, v.p_value, p, v.n_queries, v.problem)
    return out


def _order(key: dict) -> tuple:
    order = {name: i for i, name in enumerate(PRECISION_ORDER)}
    return (str(key.get("model", "")), str(key.get("backend", "")), -int(key["dim"]),
            order.get(key["precision"], len(order)), key["precision"], int(key["rescore_multiplier"]),
            str(key.get("context", "")))  # fmt: skip


def task_table(sides: list[Side], task: str, key_columns: tuple, seed: int = 0) -> TaskTable:
    """Every cell key of ``task`` in any side, each side's score and the comparisons."""
    keys = {}
    for side in sides:
        for _, row in side.rows[side.rows.task == task].iterrows():
            key = {c: _plain(row[c]) for c in key_columns}
            keys[tuple(key.values())] = key
    ordered = sorted(keys.values(), key=_order)
    cells = [[_cell(side, task, key) for side in sides] for key in ordered]
    names = sorted({str(c["main_score_name"]) for line in cells for c in line if c is not None})
    columns = []
    for j in range(1, len(sides)):
        column = [None if line[0] is None or line[j] is None else _versus(sides[0], sides[j], task, line[0], line[j], seed)
                  for line in cells]  # fmt: skip
        columns.append(_with_holm(column))
    lines = [Line(key, [None if c is None else float(c["main_score"]) for c in line], [col[i] for col in columns])
             for i, (key, line) in enumerate(zip(ordered, cells))]  # fmt: skip
    return TaskTable(task, " / ".join(names), key_columns, lines)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def compare(run_dirs: list[Path], across: str = "runs", seed: int = 0) -> Report:
    """The comparison of ``run_dirs`` (the first is the base), one table per task."""
    if across == "runs":
        sides, notes, lexical = run_sides(run_dirs), [], None
        key_columns = RUN_KEYS
    elif across == "models":
        sides, notes, lexical = model_sides(run_dirs)
        key_columns = MODEL_KEYS
    else:
        raise InputError(f"--across {across!r}: choose runs or models")
    if any(has_contexts(side.rows) for side in sides):
        key_columns = (*key_columns, "context")  # a late-chunked cell is another cell than an independent one
    tasks = sorted({t for side in sides for t in side.rows.task})
    tables = [task_table(sides, task, key_columns, seed) for task in tasks]
    return Report(across, sides, tables, notes, lexical)


# --------------------------------------------------------------------------- rendering


def key_text(key: dict) -> dict:
    """A cell key as table text: the precision with its multiplier, the dimension ("–" for lexical)."""
    out = {c: str(v) for c, v in key.items() if c not in ("precision", "rescore_multiplier")}
    if "dim" in out and key["dim"] == 0:
        out["dim"] = "–"
    out["precision"] = cell_label(key["precision"], key["rescore_multiplier"])
    return out


def _fmt(value: float | None, template: str = "{:.4f}") -> str:
    return "–" if value is None or pd.isna(value) else template.format(value)


def versus_text(v: Versus | None) -> str:
    """``+0.0123 ▲ (p 0.0004)``, or why the cells were not compared, or "" when one is missing."""
    if v is None:
        return ""
    if v.problem:
        return f"not compared: {v.problem}"
    return f"{v.difference:+.4f}{(' ' + v.mark) if v.mark else ''} (p {v.p_holm:.2g})"


def table_frame(table: TaskTable, sides: list[Side]) -> pd.DataFrame:
    """A task table as display text: key columns, each side's score, each later side's difference."""
    records = []
    for line in table.lines:
        record = {COLUMN_TITLES.get(c, c): t for c, t in key_text(line.key).items()}
        for side, score in zip(sides, line.scores):
            record[side.label] = _fmt(score)
        for side, v in zip(sides[1:], line.versus):
            record[f"Δ {side.label}"] = versus_text(v)
        records.append(record)
    return pd.DataFrame(records)


COLUMN_TITLES = {"model": "model", "backend": "backend", "dim": "dimension", "precision": "precision",
                 "context": "context"}  # fmt: skip


def note_text(report: Report) -> str:
    """What the marks and differences mean."""
    base = report.sides[0].label
    return (f"Δ: the main score minus `{base}`'s on the queries both scored (mean per-query difference); "
            f"▼/▲: significantly worse/better, paired sign-flip permutation test, p (shown) Holm-adjusted "
            f"across the cells of the table for that column, below {stats.ALPHA}.")  # fmt: skip


def unshared_text(table: TaskTable, sides: list[Side]) -> list[str]:
    """One line per cell that some sides lack: which sides have it."""
    out = []
    for line in table.unshared():
        having = [s.label for s, score in zip(sides, line.scores) if score is not None]
        label = " · ".join(key_text(line.key).values())
        out.append(f"{label}: only in {', '.join(having)}")
    return out
