"""Result tables of a run from its cell records: tidy rows, per-query scores and intervals, with
the statistics (bootstrap intervals, paired comparisons with the reference, Holm-adjusted over
each table) and each model's parameter count merged into the rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import results, stats
from bench.cells import CELL_KEYS, DEFAULT_CONTEXT, reference_scores, retention, torch_reference_scores
from bench.metrics import QUALITY_METRICS
from bench.modelsize import with_parameters
from bench.types import SweepConfig


def rows_frame(records: list[dict]) -> pd.DataFrame:
    """Tidy rows: one per cell, every metric, retention against the float32 full-width cell."""
    rows = []
    for rec in records:
        row = {"context": DEFAULT_CONTEXT, **rec["cell"], **rec["info"], **rec["metrics"]}
        row["main_score"] = rec["metrics"][rec["info"]["main_score_name"]]
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["retention"] = retention(frame.main_score, reference_scores(frame))
    frame["retention_vs_torch_float32"] = retention(frame.main_score, torch_reference_scores(frame))
    frame = with_parameters(frame)
    front = [*CELL_KEYS, "bytes_per_vector", "main_score", "retention", "retention_vs_torch_float32",
             "parameters", "parameters_source", *QUALITY_METRICS]  # fmt: skip
    return frame[front + [c for c in frame.columns if c not in front]]


def per_query_frame(records: list[dict]) -> pd.DataFrame:
    frames = []
    for rec in records:
        frame = pd.DataFrame.from_dict(rec["per_query"], orient="index")
        frame.index.name = "query_id"
        frame = frame.reset_index()
        for key in reversed(CELL_KEYS):
            frame.insert(0, key, rec["cell"].get(key, DEFAULT_CONTEXT) if key == "context" else rec["cell"][key])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_results(records: list[dict], run_dir: Path, config: SweepConfig) -> None:
    """rows.parquet/.csv, per_query.parquet and intervals.parquet of a finished sweep."""
    keys = list(CELL_KEYS)
    rows, per_query = rows_frame(records), per_query_frame(records)
    n, seed = config.bootstrap_resamples, config.seed
    intervals = stats.interval_table(per_query, list(QUALITY_METRICS), n, seed)
    main = intervals.merge(rows[[*keys, "main_score_name"]], on=keys)
    main = main[main.metric == main.main_score_name][[*keys, "ci_low", "ci_high"]]
    rows = rows.merge(main.rename(columns={"ci_low": "main_score_ci_low", "ci_high": "main_score_ci_high"}), on=keys)
    rows = rows.merge(stats.reference_comparisons(per_query, rows, n, seed), on=keys, how="left")
    if (rows.context != "independent").any():  # context against independent, paired per query, per cell
        rows = rows.merge(stats.context_comparisons(per_query, rows, n, seed), on=keys, how="left")
    results.write_frame(run_dir / results.INTERVALS, intervals)
    results.write_frame(run_dir / results.PER_QUERY, per_query)
    results.write_csv(run_dir / "rows.csv", rows)
    results.write_frame(run_dir / results.ROWS, rows)
