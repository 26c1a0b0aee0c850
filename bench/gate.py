"""Regression gate: a baseline from one run, and a check of another run against it.

A baseline is a JSON file (scores, intervals, grid fingerprint, task digests, versions) and,
beside it, a Parquet file of every query's main score in every cell. Every metric knows its
direction (quality: higher is better; latency, memory and sizes: lower is better).

The main score is tested on the same queries: a cell regresses when it is worse than the baseline
by more than the tolerance **and** a paired sign-flip test over the shared queries finds the drop
significant (Holm-adjusted across the cells checked), or when it is worse by more than the hard
limit alone. Metrics without per-query scores in the baseline (other quality metrics, costs)
regress when worse by more than the tolerance. ``outside_ci`` swaps the paired test for the older,
weaker rule: the mean must also leave the baseline's bootstrap interval. Exit codes: 0 all hold,
1 a regression, 2 a usage error (another grid or task data, missing cells, queries or metrics).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench import results, stats
from bench.cache import atomic_write_bytes
from bench.cells import CELL_KEYS as CELL
from bench.cells import DEFAULT_CONTEXT, cell_label
from bench.errors import InputError, unknown
from bench.metrics import ALL_METRICS, GATED_QUALITY, MAIN_SCORE
from bench.names import child

GRID_KEYS = ("models", "tasks", "backends", "dims", "precisions", "top_k", "rescore_multipliers", "calibration",
             "lexical", "limit", "contexts")
DEFAULT_TOLERANCE = {"quality": ("abs", 0.005), "cost": ("rel", 0.25)}
# A drop beyond this fails whatever the test says (a small query set may never reach significance).
DEFAULT_HARD_LIMIT = {"quality": ("abs", 0.03), "cost": ("rel", 0.25)}
PER_QUERY_SUFFIX = ".per_query.parquet"
CONSISTENT = 1e-9  # per-query means must equal the stored mean within this (else a file was altered)


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


def main_score_per_query(per_query: pd.DataFrame, rows: pd.DataFrame, where: Path) -> pd.DataFrame:
    """Every query's main score in every cell of ``rows``: the cell keys, ``query_id``, ``score``;
    each cell's scores must average to its row's main score."""
    frames = []
    for _, row in rows.iterrows():
        scores = stats.cell_scores(per_query, row, row["main_score_name"])
        if scores.empty or abs(float(scores.mean()) - float(row["main_score"])) > CONSISTENT:
            raise InputError(f"{where}: the per-query scores of cell {[_plain(row[k]) for k in CELL]} do not "
                             f"average to its main score in rows.parquet ({row['main_score']:.6f})")  # fmt: skip
        frame = pd.DataFrame({"query_id": scores.index.astype(str), "score": scores.to_numpy(dtype=np.float64)})
        for key in reversed(CELL):
            frame.insert(0, key, row[key])
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"dim": "int64", "rescore_multiplier": "int64", "model": str, "task": str, "backend": str,
                       "precision": str, "context": str})  # fmt: skip


def make_baseline(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """Scores, CIs, grid fingerprint, task digests and versions of a finished run, and every
    query's main score per cell (the frame ``write_baseline`` stores beside the JSON)."""
    manifest, rows = results.read_run(run_dir)
    intervals = results.read_intervals(run_dir)
    cells = []
    for _, row in rows.iterrows():
        mask = (intervals[list(CELL)] == row[list(CELL)].values).all(axis=1)
        cells.append({**{k: _plain(row[k]) for k in CELL}, "main_score_name": str(row["main_score_name"]),
                      "metrics": _cell_metrics(row, intervals[mask])})  # fmt: skip
    grid = grid_of(manifest)
    tasks = sorted(set(rows.task))
    baseline = {
        "kind": "bench-baseline", "schema_version": results.SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(), "run_id": manifest["run_id"],
        "grid": grid, "grid_fingerprint": grid_fingerprint(grid), "git_sha": manifest.get("git_sha"),
        "packages": manifest.get("packages", {}), "cells": cells,
        "task_digests": {t: manifest.get("task_digests", {}).get(t) for t in tasks},
    }  # fmt: skip
    per_query = main_score_per_query(results.read_per_query(run_dir), rows, Path(run_dir) / results.PER_QUERY)
    return baseline, per_query


def per_query_path(baseline_path: Path) -> Path:
    """The per-query file beside a baseline: ``x.json`` -> ``x.per_query.parquet``."""
    path = Path(baseline_path)
    return path.with_name(path.name.removesuffix(".json") + PER_QUERY_SUFFIX)


def write_baseline(path: Path, baseline: dict, per_query: pd.DataFrame) -> None:
    """The per-query Parquet file, then the JSON naming it by file name and SHA-256."""
    target = per_query_path(path)
    buffer = io.BytesIO()
    per_query.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    atomic_write_bytes(target, data)
    reference = {"file": target.name, "sha256": hashlib.sha256(data).hexdigest(), "metric": MAIN_SCORE.name,
                 "rows": len(per_query)}  # fmt: skip
    results.write_json(path, {**baseline, "per_query": reference})


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
    hard_limit: float | None = None
    p_value: float | None = None  # the paired test's, unadjusted (main score only)
    p_holm: float | None = None  # Holm-adjusted across the cells checked
    n_queries: int | None = None
    reason: str = ""  # why it regressed: "significant drop", "beyond the hard limit", ...

    @property
    def worse_by(self) -> float:
        return ALL_METRICS[self.metric].worse_by(self.baseline, self.measured)


def _rule(metric: str, overrides: dict[str, tuple[str, float]], defaults: dict) -> tuple[str, float]:
    if metric in overrides:
        return overrides[metric]
    return defaults["quality" if metric in GATED_QUALITY else "cost"]


def tolerance_for(metric: str, overrides: dict[str, tuple[str, float]]) -> tuple[str, float]:
    return _rule(metric, overrides, DEFAULT_TOLERANCE)


def parse_tolerances(specs: list[str], flag: str = "--tolerance") -> dict[str, tuple[str, float]]:
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
            raise InputError(f"{flag} {spec!r}: expected METRIC=abs:X or METRIC=rel:X with X a finite number >= 0")
        names = GATED_QUALITY if name == "quality" else [m for m in ALL_METRICS if m not in GATED_QUALITY] \
            if name == "cost" else [name]  # fmt: skip
        for metric in names:
            if metric not in ALL_METRICS:
                raise unknown("metric", metric, ALL_METRICS)
            out[metric] = (kind, number)
    return out


@dataclass(frozen=True)
class Rules:
    """How a check decides: tolerances and hard limits per metric, and the unpaired option."""

    tolerances: dict
    hard_limits: dict
    outside_ci: bool = False


def check(run_dir: Path, baseline: dict, metrics: list[str] | None, tolerances: dict, outside_ci: bool,
          hard_limits: dict | None = None, per_query: pd.DataFrame | None = None) -> list[Finding]:  # fmt: skip
    """Compare every baseline cell; raise ``InputError`` on a grid or data mismatch or missing data.
    ``per_query``: the baseline's per-query main scores (``read_baseline_per_query``)."""
    manifest, rows = results.read_run(run_dir)
    _same_grid(manifest, baseline)
    rules = Rules(tolerances, hard_limits or {}, outside_ci)
    names = list(metrics or [MAIN_SCORE.name])
    matched = [(cell, _matching_row(rows, cell)) for cell in baseline["cells"]]
    findings = []
    if MAIN_SCORE.name in names:
        if per_query is None:
            raise InputError("the baseline holds no per-query scores (it was made by an older bench); make it "
                             "again with `bench baseline`")  # fmt: skip
        findings += _paired_findings(run_dir, matched, per_query, rules)
    for metric in [m for m in names if m != MAIN_SCORE.name]:
        findings += [_compare(cell, row, metric, rules) for cell, row in matched if _applies(metric, cell, row)]
    if not findings:
        raise InputError("the check compared nothing; a gate that compares nothing cannot pass")
    return findings


def _unordered(grid: dict) -> dict:
    """A grid with its lists in a canonical order: ``--dims 128,384`` sweeps the cells of 384,128."""
    def canonical(value):
        return sorted(value, key=lambda v: json.dumps(v, sort_keys=True)) if isinstance(value, list) else value

    return {k: canonical(v) for k, v in grid.items()}


def _same_grid(manifest: dict, baseline: dict) -> None:
    """The run must be of the baseline's grid (its lists in any order) and score the same task data."""
    ours, theirs = _unordered(grid_of(manifest)), _unordered(baseline["grid"])
    if ours != theirs:
        diff = [f"{k}: baseline {theirs.get(k)!r}, run {ours.get(k)!r}" for k in GRID_KEYS
                if theirs.get(k) != ours.get(k)]  # fmt: skip
        raise InputError(f"run and baseline have different configurations ({'; '.join(diff)})")
    for task, digest in (baseline.get("task_digests") or {}).items():
        if digest and manifest.get("task_digests", {}).get(task) not in (None, digest):
            raise InputError(f"task {task}: the run scored other data than the baseline (task digest "
                             f"{manifest['task_digests'][task]} against {digest}); make a new baseline")  # fmt: skip


def _matching_row(rows: pd.DataFrame, cell: dict) -> pd.Series:
    match = rows[(rows[list(CELL)] == pd.Series({k: cell[k] for k in CELL})).all(axis=1)]
    if match.empty:
        raise InputError(f"cell {[cell[k] for k in CELL]} is in the baseline but not in the run")
    row = match.iloc[0]
    _same_main_score(cell, row)
    return row


def read_baseline(path: Path) -> dict:
    """A baseline file checked against ``bench.schemas.BaselineSchema`` (finite numbers, at least
    one cell), so bad numbers can never switch the gate off."""
    from bench.schemas import BaselineSchema, validated

    baseline = results.read_json(path)
    validated(BaselineSchema, baseline, str(path))
    for cell in baseline["cells"]:  # baselines from before contexts: every cell embedded its texts alone
        cell.setdefault("context", DEFAULT_CONTEXT)
    return baseline


def read_baseline_per_query(path: Path, baseline: dict) -> pd.DataFrame | None:
    """The per-query main scores a baseline names (None for an older baseline without them), checked:
    the file's SHA-256, ``bench.schemas.validated_per_query``, exactly the baseline's cells, and each
    cell's mean equal to its stored main score."""
    from bench.schemas import validated_per_query

    ref = baseline.get("per_query")
    if ref is None:
        return None
    target = child(Path(path).parent, ref["file"], "per-query file")
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise InputError(f"{target}: cannot read the baseline's per-query scores ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise InputError(f"{target}: its SHA-256 is not the one {Path(path).name} records; the file was changed")
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise InputError(f"{target}: not a readable Parquet file ({type(exc).__name__})") from None
    if "context" not in frame.columns:  # written before contexts: every cell embedded its texts alone
        frame["context"] = DEFAULT_CONTEXT
    validated_per_query(frame, str(target))
    _per_query_matches_cells(frame, baseline, target)
    return frame


def _per_query_matches_cells(frame: pd.DataFrame, baseline: dict, where: Path) -> None:
    means = frame.groupby(list(CELL), sort=False).score.mean()
    cells = {tuple(c[k] for k in CELL): c for c in baseline["cells"]}
    extra = [k for k in means.index if k not in cells]
    if extra:
        raise InputError(f"{where}: cell {list(extra[0])} is not in the baseline")
    for key, cell in cells.items():
        stored = cell["metrics"].get(MAIN_SCORE.name, {}).get("value")
        if key not in means.index:
            raise InputError(f"{where}: no per-query scores for cell {list(key)}")
        if stored is None or abs(means[key] - stored) > CONSISTENT:
            raise InputError(f"{where}: the per-query scores of cell {list(key)} average {means[key]:.6f}, "
                             f"the baseline's main score is {stored}; the files do not belong together")  # fmt: skip


def _same_main_score(cell: dict, row: pd.Series) -> None:
    """The baseline's main score must be the run's: comparing nDCG@10 with nDCG@1 proves nothing."""
    name = cell.get("main_score_name")
    if name and name != row["main_score_name"]:
        raise InputError(f"cell {[cell[k] for k in CELL]}: the baseline's main score is {name}, "
                         f"the run's is {row['main_score_name']}; make a new baseline")  # fmt: skip


def _allowed(rule: tuple[str, float], base: float) -> float:
    kind, value = rule
    return value if kind == "abs" else value * abs(base)


def _limits(metric: str, base: float, rules: Rules) -> tuple[float, float]:
    """(tolerance, hard limit) of a metric as amounts in its units; a hard limit below the
    tolerance is a usage error (it would fail drops the tolerance allows)."""
    allowed = _allowed(tolerance_for(metric, rules.tolerances), base)
    hard = _allowed(_rule(metric, rules.hard_limits, DEFAULT_HARD_LIMIT), base)
    if hard < allowed - 1e-12:
        raise InputError(f"--hard-limit of {metric} ({hard:g}) is below its tolerance ({allowed:g})")
    return allowed, hard


def _run_scores(run_dir: Path, per_query: pd.DataFrame | None, row: pd.Series, cell: dict) -> pd.Series:
    """The run's per-query main scores of a cell, checked against its stored mean."""
    scores = stats.cell_scores(per_query, row, row["main_score_name"])
    scores.index = scores.index.astype(str)
    if scores.empty or not np.isfinite(scores.to_numpy(dtype=np.float64)).all():
        raise InputError(f"{run_dir / results.PER_QUERY}: cell {[cell[k] for k in CELL]} has no finite per-query scores")
    if abs(float(scores.mean()) - float(row["main_score"])) > CONSISTENT:
        raise InputError(f"{run_dir}: per-query scores of cell {[cell[k] for k in CELL]} average "
                         f"{scores.mean():.6f}, rows.parquet says {row['main_score']:.6f}; the run's files "
                         "do not belong together")  # fmt: skip
    return scores


def _paired_findings(run_dir: Path, matched: list, base_pq: pd.DataFrame, rules: Rules) -> list[Finding]:
    """The main score of every cell, tested on the same queries; one Holm family for the check."""
    run_pq = results.read_per_query(run_dir)
    tests = []
    for cell, row in matched:
        key = tuple(cell[k] for k in CELL)
        base = base_pq[(base_pq[list(CELL)] == pd.Series(dict(zip(CELL, key)))).all(axis=1)]
        base = base.set_index("query_id").score.sort_index()
        run = _run_scores(run_dir, run_pq, row, cell)
        if set(run.index) != set(base.index):
            raise InputError(f"cell {list(key)}: the run scored other queries than the baseline ({len(run)} and "
                             f"{len(base)}, {len(set(run.index) & set(base.index))} shared); make a new baseline")  # fmt: skip
        tests.append((cell, row, base, stats.paired_comparison(run.reindex(base.index).to_numpy(), base.to_numpy())))
    adjusted = stats.holm([t[3].p_value for t in tests])
    return [_paired_finding(cell, base, cmp, p_holm, rules) for (cell, _, base, cmp), p_holm in zip(tests, adjusted)]


def _paired_finding(cell: dict, base: pd.Series, cmp, p_holm: float, rules: Rules) -> Finding:
    """A drop beyond the hard limit fails alone; one beyond the tolerance fails when the paired test
    finds it significant (or, with ``outside_ci``, when the mean leaves the baseline's interval)."""
    stored = cell["metrics"][MAIN_SCORE.name]
    baseline = float(base.mean())
    measured = baseline + cmp.mean_difference
    allowed, hard = _limits(MAIN_SCORE.name, baseline, rules)
    drop = baseline - measured
    if drop > hard + 1e-12:
        reason = "beyond the hard limit"
    elif drop <= allowed + 1e-12:
        reason = ""
    elif rules.outside_ci:
        outside = "ci_low" not in stored or measured < stored["ci_low"]
        reason = "beyond the tolerance, outside the baseline's interval (unpaired)" if outside else ""
    else:
        reason = "beyond the tolerance, significant (paired)" if p_holm < stats.ALPHA else ""
    return Finding({k: cell[k] for k in CELL}, MAIN_SCORE.name, baseline, measured, allowed, bool(reason), hard,
                   cmp.p_value, p_holm, cmp.n_queries, reason)  # fmt: skip


def _applies(metric: str, cell: dict, row: pd.Series) -> bool:
    """Whether a cell has ``metric`` at all: a lexical baseline has no encoder, so neither its
    baseline cell nor its row holds encode costs (one of the two holding it is a mismatch)."""
    return metric in cell["metrics"] or (metric in row and pd.notna(row[metric]))


def _compare(cell: dict, row: pd.Series, metric: str, rules: Rules) -> Finding:
    """A metric without per-query scores: worse by more than the tolerance (and, with
    ``outside_ci``, beyond the baseline's interval)."""
    base = cell["metrics"].get(metric)
    if base is None or metric not in row or pd.isna(row[metric]):
        raise InputError(f"metric {metric} is missing for cell {[cell[k] for k in CELL]}")
    if not math.isfinite(float(row[metric])):
        raise InputError(f"metric {metric} of cell {[cell[k] for k in CELL]} is not a finite number in the run")
    allowed = _allowed(tolerance_for(metric, rules.tolerances), base["value"])
    measured, direction = float(row[metric]), ALL_METRICS[metric]
    regressed = direction.worse_by(base["value"], measured) > allowed + 1e-12
    if regressed and rules.outside_ci and "ci_low" in base:
        regressed = direction.worse_than_interval(measured, base["ci_low"], base["ci_high"])
    return Finding({k: cell[k] for k in CELL}, metric, base["value"], measured, allowed, regressed,
                   reason="beyond the tolerance" if regressed else "")  # fmt: skip


def _number(value: float | None, template: str = "{:.4g}") -> str:
    return "–" if value is None else template.format(value)


def markdown(findings: list[Finding], baseline: dict, run_id: str) -> str:
    bad = [f for f in findings if f.regressed]
    cells = {tuple(f.cell.values()) for f in findings}
    paired = [f for f in findings if f.p_value is not None]
    head = (f"### bench check: {'❌ ' + str(len(bad)) + ' regression(s)' if bad else '✅ no regressions'}\n\n"
            f"run `{run_id}` against baseline `{baseline['run_id']}`: {len(cells)} cells, "
            f"{len(findings)} metric comparisons\n")  # fmt: skip
    if paired:
        head += (f"\nmain score tested on the same queries (paired sign-flip test, Holm-adjusted across "
                 f"{len(paired)} cells, p < {stats.ALPHA}); a regression is a drop beyond the tolerance that is "
                 f"significant, or beyond the hard limit\n")  # fmt: skip
    if not bad:
        return head
    lines = ["", ("| model | task | backend | dimension | precision | metric | baseline | measured | worse by | "
                  "tolerance | hard limit | p (Holm) | queries | why |"),
             "|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for f in bad:
        c = f.cell
        label = cell_label(c["precision"], c["rescore_multiplier"])
        lines.append(f"| {c['model']} | {c['task']} | {c['backend']} | {c['dim']} | {label} | {f.metric} | "
                     f"{f.baseline:.5g} | {f.measured:.5g} | {f.worse_by:.5g} | {f.allowed:.5g} | "
                     f"{_number(f.hard_limit, '{:.5g}')} | {_number(f.p_holm)} | {_number(f.n_queries, '{}')} | "
                     f"{f.reason} |")  # fmt: skip
    return head + "\n".join(lines) + "\n"


def findings_json(findings: list[Finding]) -> dict:
    return {"regressions": sum(f.regressed for f in findings), "comparisons": len(findings),
            "findings": [{**f.cell, "metric": f.metric, "baseline": f.baseline, "measured": f.measured,
                          "allowed": f.allowed, "hard_limit": f.hard_limit, "worse_by": f.worse_by,
                          "p_value": f.p_value, "p_holm": f.p_holm, "n_queries": f.n_queries,
                          "regressed": f.regressed, "reason": f.reason} for f in findings]}  # fmt: skip
