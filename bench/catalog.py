"""Every run under a results folder, and questions across them.

Each run folder stays self-contained; the catalog only reads them. ``find_runs`` lists the run
folders with their grid and status; ``connect`` opens an in-memory DuckDB database (no server, no
file written) whose views read the finished runs' Parquet files where they lie:

- ``runs``: one row per finished run (``run_id``, ``started_at``, ``finished_at``, ``git_sha``, ``path``,
  ``query_limit``: the ``--limit`` of a smoke run, else NULL);
- ``rows``: every result row of every finished run, with its run's ``run_id``, ``started_at`` and
  ``query_limit``, and its task's ``task_digest`` (the data it scored; NULL for older runs);
- ``per_query``: every per-query score, with its ``run_id``.

``model_history``, ``best_under_budget`` and ``task_models`` answer the common questions; any other
is one SQL query away (``connect(...).sql("SELECT ...").df()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from bench import results
from bench.errors import BenchError, InputError
from bench.rundir import MARKER

GRID = ("models", "tasks", "backends", "dims", "precisions")
# Columns some runs' rows lack (older versions, runs without measurements): NULL in the views.
OPTIONAL_COLUMNS = {"parameters": "BIGINT", "documents_per_second": "DOUBLE", "search_queries_per_second": "DOUBLE",
                    "split": "VARCHAR", "subset": "VARCHAR"}  # fmt: skip


@dataclass(frozen=True)
class RunInfo:
    """A run folder as ``bench ls runs`` shows it."""

    run_id: str
    path: Path
    status: str  # finished | running (a live or interrupted run) | no manifest | invalid
    started_at: str = ""
    finished_at: str = ""
    git_sha: str = ""
    grid: dict = field(default_factory=dict)
    cells: int | None = None
    problem: str = ""  # why a folder is listed but cannot be queried
    limit: int | None = None  # a --limit smoke run: the first N judged queries and a cut corpus
    task_digests: dict = field(default_factory=dict)  # task -> digest of the data it scored

    @property
    def queryable(self) -> bool:
        return self.status == "finished" and not self.problem


def _run_info(folder: Path) -> RunInfo:
    """One folder's status, grid and cell count; a damaged one is listed with its problem."""
    try:
        manifest = results.read_manifest(folder)
    except BenchError as exc:
        if not (folder / results.MANIFEST).exists():
            return RunInfo(folder.name, folder, "no manifest", problem="not started or stopped before writing one")
        return RunInfo(folder.name, folder, "invalid", problem=str(exc))
    config = manifest["config"]
    info = RunInfo(str(manifest["run_id"]), folder, manifest["status"], str(manifest.get("started_at") or ""),
                   str(manifest.get("finished_at") or ""), str(manifest.get("git_sha") or ""),
                   {k: config.get(k) for k in GRID}, limit=config.get("limit") or None,
                   task_digests=dict(manifest.get("task_digests") or {}))  # fmt: skip
    if info.status != "finished":
        return info
    try:
        rows = results.read_frame(folder / results.ROWS, results.ROW_COLUMNS)
    except InputError as exc:
        return replace(info, status="invalid", problem=str(exc))
    return replace(info, cells=len(rows))


def find_runs(root: Path) -> list[RunInfo]:
    """Every run folder directly under ``root`` (a folder with a manifest or bench's marker),
    oldest first; other folders (``baselines/``, ...) are not runs and are left out."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: results folder not found")
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and ((p / results.MANIFEST).is_file() or (p / MARKER).exists())]
    return sorted((_run_info(p) for p in folders), key=lambda r: (r.started_at, r.run_id))


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(runs: list[RunInfo]):
    """An in-memory DuckDB connection with the views ``runs``, ``rows`` and ``per_query`` over the
    queryable runs' files (read in place, nothing copied or written)."""
    import duckdb

    usable = [r for r in runs if r.queryable]
    if not usable:
        raise InputError("no finished runs to query")
    con = duckdb.connect()
    table = pd.DataFrame([{"run_id": r.run_id, "started_at": r.started_at, "finished_at": r.finished_at,
                           "git_sha": r.git_sha, "path": str(r.path), "rows_file": str(r.path / results.ROWS),
                           "per_query_file": str(r.path / results.PER_QUERY), "query_limit": r.limit}
                          for r in usable])  # fmt: skip
    table["query_limit"] = table.query_limit.astype("Int64")
    digests = pd.DataFrame([{"rows_file": str(r.path / results.ROWS), "task": str(t), "task_digest": str(d)}
                            for r in usable for t, d in r.task_digests.items()],
                           columns=["rows_file", "task", "task_digest"])  # by folder: a copied run keeps its id  # fmt: skip
    con.register("runs_table", table)
    con.register("digests_table", digests)
    con.execute("CREATE VIEW runs AS SELECT run_id, started_at, finished_at, git_sha, path, query_limit FROM runs_table")
    rows = _sql_list([r.path / results.ROWS for r in usable])
    con.execute(f"CREATE VIEW raw_rows AS SELECT * FROM read_parquet({rows}, union_by_name=true, filename=true)")
    present = {c[0] for c in con.execute("DESCRIBE raw_rows").fetchall()}
    extra = "".join(f", CAST(NULL AS {t}) AS {c}" for c, t in OPTIONAL_COLUMNS.items() if c not in present)
    con.execute(f"CREATE VIEW rows AS SELECT r.* EXCLUDE (filename){extra}, t.run_id, t.started_at, t.query_limit, "
                "d.task_digest FROM raw_rows r JOIN runs_table t ON r.filename = t.rows_file "
                "LEFT JOIN digests_table d ON d.rows_file = t.rows_file AND d.task = r.task")  # fmt: skip
    with_pq = [r for r in usable if (r.path / results.PER_QUERY).is_file()]
    if with_pq:
        files = _sql_list([r.path / results.PER_QUERY for r in with_pq])
        con.execute(f"CREATE VIEW per_query AS SELECT q.* EXCLUDE (filename), t.run_id FROM read_parquet({files}, "
                    "union_by_name=true, filename=true) q JOIN runs_table t ON q.filename = t.per_query_file")  # fmt: skip
    return con


def model_history(con, model: str) -> pd.DataFrame:
    """All cells of a model in every run, oldest run first."""
    return con.execute(
        "SELECT run_id, started_at, task, backend, dim, precision, rescore_multiplier, main_score_name, main_score, "
        "bytes_per_vector, query_limit FROM rows WHERE model = ? "
        "ORDER BY started_at, run_id, task, backend, dim DESC, precision, rescore_multiplier", [model]).df()  # fmt: skip


def best_under_budget(con, max_bytes: float, task: str | None = None) -> pd.DataFrame:
    """Per task data (task, the digest of the data scored, main score), the cell with the highest
    main score among those storing at most ``max_bytes`` per vector, over every run but ``--limit``
    smoke runs (the smaller, then the newer cell wins a tie). Runs that scored other data under one
    task name (edited judgements, another revision) are answered apart, each with its digest."""
    where, params = "bytes_per_vector <= ? AND query_limit IS NULL", [float(max_bytes)]
    if task is not None:
        where, params = where + " AND task = ?", params + [task]
    return con.execute(
        f"SELECT task, left(task_digest, 12) AS task_data, main_score_name, main_score, model, backend, dim, precision, "
        f"rescore_multiplier, bytes_per_vector, run_id FROM rows WHERE {where} "
        "QUALIFY row_number() OVER (PARTITION BY task, task_digest, main_score_name ORDER BY main_score DESC, "
        "bytes_per_vector, started_at DESC) = 1 ORDER BY task, task_data", params).df()  # fmt: skip


def task_models(con, task: str) -> pd.DataFrame:
    """Every (model, backend) evaluated on a task, from its newest run there (``--limit`` smoke runs
    left out): the float32 score at its widest dimension, its best cell, parameter count, encode
    throughput and the digest of the task data it scored (rows scored on other data say so by
    it); best first."""
    return con.execute(
        "WITH t AS (SELECT * FROM rows WHERE task = ? AND query_limit IS NULL), "
        "newest AS (SELECT model, backend, max(started_at) AS started_at FROM t GROUP BY model, backend), "
        "r AS (SELECT t.* FROM t JOIN newest USING (model, backend, started_at)) "
        "SELECT model, backend, any_value(main_score_name) AS main_score_name, "
        "arg_max(main_score, dim) FILTER (WHERE precision = 'float32' AND rescore_multiplier = 0) AS float32_score, "
        "max(main_score) AS best_score, arg_max(precision || '@' || dim, main_score) AS best_cell, "
        "any_value(parameters) AS parameters, any_value(documents_per_second) AS documents_per_second, "
        "left(any_value(task_digest), 12) AS task_data, any_value(run_id) AS run_id FROM r GROUP BY model, backend "
        "ORDER BY best_score DESC", [task]).df()  # fmt: skip


def limited_runs(con, task: str | None = None, max_bytes: float | None = None) -> int:
    """How many ``--limit`` smoke runs the budget or task answer left out: those with a cell it
    would otherwise have read (the task's, within the budget)."""
    where, params = ["query_limit IS NOT NULL"], []
    if task is not None:
        where, params = where + ["task = ?"], params + [task]
    if max_bytes is not None:
        where, params = where + ["bytes_per_vector <= ?"], params + [float(max_bytes)]
    query = f"SELECT count(DISTINCT run_id) FROM rows WHERE {' AND '.join(where)}"
    return int(con.execute(query, params).fetchone()[0])
