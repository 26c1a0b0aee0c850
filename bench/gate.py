"""Regression gate: a baseline from one run, and a check of another run against it.

Every metric knows its direction (quality: higher is better; latency, memory and sizes: lower is
better). A cell regresses on a metric when it is worse than the baseline by more than the larger
of the metric's absolute and relative tolerance; with ``outside_ci``, the drop must also fall
outside the baseline's bootstrap confidence interval. Exit codes: 0 all hold, 1 a regression,
2 a usage error (another grid, missing cells or metrics).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench import results
from bench.cells import CELL_KEYS as CELL
from bench.cells import DEFAULT_CONTEXT, cell_label
from bench.errors import InputError, unknown
from bench.metrics import ALL_METRICS, GATED_QUALITY

GRID_KEYS = ("models", "tasks", "backends", "dims", "precisions", "top_k", "rescore_multipliers", "calibration",
             "lexical", "limit", "contexts")
DEFAULT_TOLERANCE = {"quality": ("abs", 0.005), "cost": ("rel", 0.25)}


def grid_of(manifest: dict) -> dict:
    """The grid a run swept; ``contexts`` only where it swept more than the default (older grids
    have no such key, and keep their fingerprint)."""
    grid = {k: manifest["config"].get(k) for k in GRID_KEYS}
    if grid["contexts"] is None:
        del grid["contexts"]
    return grid


def grid_fingerprint(grid: dict) -> str:
    return hashlib.sha256(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:16]


def _cell_metrics(row: pd.Series, intervals: pd.DataFrame) -> dict:
    out = {}
    for name in ALL_METRICS:
        if name in row and pd.notna(row[name]):
            out[name] = {"value": float(row[name])}
    for _, iv in intervals.iterrows():
        if iv.metric in out:
            out[iv.metric].update(ci_low=float(iv.ci_low), ci_high=float(iv.ci_high))
    if "main_score" in out and pd.notna(row.get("main_score_ci_low")):
        out["main_score"].update(ci_low=float(row["main_score_ci_low"]), ci_high=float(row["main_score_ci_high"]))
    return out


def make_baseline(run_dir: Path) -> dict:
    """Scores, CIs, grid fingerprint and versions of a finished run."""
    manifest, rows = results.read_run(run_dir)
    intervals = results.read_intervals(run_dir)
    cells = []
    for _, row in rows.iterrows():
        mask = (intervals[list(CELL)] == row[list(CELL)].values).all(axis=1)
        cells.append({**{k: _plain(row[k]) for k in CELL}, "main_score_name": str(row["main_score_name"]),
                      "metrics": _cell_metrics(row, intervals[mask])})  # fmt: skip
    grid = grid_of(manifest)
    return {
        "kind": "bench-baseline", "schema_version": results.SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(), "run_id": manifest["run_id"],
        "grid": grid, "grid_fingerprint": grid_fingerprint(grid), "git_sha": manifest.get("git_sha"),
        "packages": manifest.get("packages", {}), "cells": cells,
    }  # fmt: skip


def _plain(value):
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class Finding:
    cell: dict
    metric: str
    baseline: float
    measured: float
    allowed: float
    regressed: bool

    @property
    def worse_by(self) -> float:
        return ALL_METRICS[self.metric].worse_by(self.baseline, self.measured)


def tolerance_for(metric: str, overrides: dict[str, tuple[str, float]]) -> tuple[str, float]:
    if metric in overrides:
        return overrides[metric]
    return DEFAULT_TOLERANCE["quality" if metric in GATED_QUALITY else "cost"]


def parse_tolerances(specs: list[str]) -> dict[str, tuple[str, float]]:
    """``metric=abs:0.01`` or ``metric=rel:0.2`` (the metric may be ``quality`` or ``cost`` for all)."""
    out: dict[str, tuple[str, float]] = {}
    for spec in specs:
        name, _, rule = spec.partition("=")
        kind, _, value = rule.partition(":")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if kind not in ("abs", "rel") or not math.isfinite(number) or number < 0:  # nan would pass everything
            raise InputError(f"--tolerance {spec!r}: expected METRIC=abs:X or METRIC=rel:X with X a finite number >= 0")
        names = GATED_QUALITY if name == "quality" else [m for m in ALL_METRICS if m not in GATED_QUALITY] \
            if name == "cost" else [name]  # fmt: skip
        for metric in names:
            if metric not in ALL_METRICS:
                raise unknown("metric", metric, ALL_METRICS)
            out[metric] = (kind, number)
    return out


def check(run_dir: Path, baseline: dict, metrics: list[str] | None, tolerances: dict, outside_ci: bool) -> list[Finding]:
    """Compare every baseline cell; raise ``InputError`` on a grid mismatch or missing data."""
    manifest, rows = results.read_run(run_dir)
    if grid_fingerprint(grid_of(manifest)) != baseline["grid_fingerprint"]:
        diff = {k: (baseline["grid"].get(k), grid_of(manifest).get(k)) for k in GRID_KEYS
                if baseline["grid"].get(k) != grid_of(manifest).get(k)}  # fmt: skip
        raise InputError(f"run and baseline have different configurations: {diff}")
    findings = []
    for cell in baseline["cells"]:
        match = rows[(rows[list(CELL)] == pd.Series({k: cell[k] for k in CELL})).all(axis=1)]
        if match.empty:
            raise InputError(f"cell {[cell[k] for k in CELL]} is in the baseline but not in the run")
        _same_main_score(cell, match.iloc[0])
        # A baseline older than main_score in baselines still checks every metric it holds.
        names = metrics or [m for m in GATED_QUALITY if m in cell["metrics"] or m != "main_score"]
        for metric in names:
            findings.append(_compare(cell, match.iloc[0], metric, tolerances, outside_ci))
    if not findings:
        raise InputError("the check compared nothing; a gate that compares nothing cannot pass")
    return findings


def read_baseline(path: Path) -> dict:
    """A baseline file checked against ``bench.schemas.BaselineSchema`` (finite numbers, at least
    one cell), so bad numbers can never switch the gate off."""
    from bench.schemas import BaselineSchema, validated

    baseline = results.read_json(path)
    validated(BaselineSchema, baseline, str(path))
    for cell in baseline["cells"]:  # baselines from before contexts: every cell embedded its texts alone
        cell.setdefault("context", DEFAULT_CONTEXT)
    return baseline


def _same_main_score(cell: dict, row: pd.Series) -> None:
    """The baseline's main score must be the run's: comparing nDCG@10 with nDCG@1 proves nothing."""
    name = cell.get("main_score_name")
    if name and name != row["main_score_name"]:
        raise InputError(f"cell {[cell[k] for k in CELL]}: the baseline's main score is {name}, "
                         f"the run's is {row['main_score_name']}; make a new baseline")  # fmt: skip


def _compare(cell: dict, row: pd.Series, metric: str, tolerances: dict, outside_ci: bool) -> Finding:
    base = cell["metrics"].get(metric)
    if base is None or metric not in row or pd.isna(row[metric]):
        raise InputError(f"metric {metric} is missing for cell {[cell[k] for k in CELL]}")
    if not math.isfinite(float(row[metric])):
        raise InputError(f"metric {metric} of cell {[cell[k] for k in CELL]} is not a finite number in the run")
    kind, tol = tolerance_for(metric, tolerances)
    allowed = tol if kind == "abs" else tol * abs(base["value"])
    measured, direction = float(row[metric]), ALL_METRICS[metric]
    regressed = direction.worse_by(base["value"], measured) > allowed + 1e-12
    if regressed and outside_ci and "ci_low" in base:
        regressed = direction.worse_than_interval(measured, base["ci_low"], base["ci_high"])
    return Finding({k: cell[k] for k in CELL}, metric, base["value"], measured, allowed, regressed)


def markdown(findings: list[Finding], baseline: dict, run_id: str) -> str:
    bad = [f for f in findings if f.regressed]
    cells = {tuple(f.cell.values()) for f in findings}
    head = (f"### bench check: {'❌ ' + str(len(bad)) + ' regression(s)' if bad else '✅ no regressions'}\n\n"
            f"run `{run_id}` against baseline `{baseline['run_id']}`: {len(cells)} cells, "
            f"{len(findings)} metric comparisons\n")  # fmt: skip
    if not bad:
        return head
    lines = ["", "| model | task | backend | dim | precision | metric | baseline | measured | worse by | allowed |",
             "|---|---|---|---:|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for f in bad:
        c = f.cell
        label = cell_label(c["precision"], c["rescore_multiplier"])
        lines.append(f"| {c['model']} | {c['task']} | {c['backend']} | {c['dim']} | {label} | {f.metric} | "
                     f"{f.baseline:.5g} | {f.measured:.5g} | {f.worse_by:.5g} | {f.allowed:.5g} |")  # fmt: skip
    return head + "\n".join(lines) + "\n"


def findings_json(findings: list[Finding]) -> dict:
    return {"regressions": sum(f.regressed for f in findings), "comparisons": len(findings),
            "findings": [{**f.cell, "metric": f.metric, "baseline": f.baseline, "measured": f.measured,
                          "allowed": f.allowed, "worse_by": f.worse_by, "regressed": f.regressed}
                         for f in findings]}  # fmt: skip
