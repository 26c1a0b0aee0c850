"""Write a run's results in MTEB's result layout, one experiment folder per cell setting.

``OUT/<experiment>/<org__model>/<revision>/<Task>.json`` where the experiment is
``<backend>__<dim>__<precision>`` (``...__<precision>-m<m>`` for a rescoring cell): each folder can be compared with, or submitted to, the MTEB
results repository as the results of that configuration. Files follow MTEB's ``TaskResult``
schema (scores per split and subset, ``main_score``, ``mteb_version``, ``dataset_revision``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from bench import results
from bench.metrics import QUALITY_METRICS


def _languages(task: str) -> list[str]:
    """The task's languages from MTEB's registry when it knows the task, else none."""
    try:
        import mteb

        return list(mteb.get_task(task).metadata.eval_langs)
    except Exception:  # noqa: BLE001 - a task MTEB does not know simply has no language tag
        return []


def task_result(row: pd.Series, manifest: dict) -> dict:
    """One MTEB TaskResult document for one cell."""
    scores = {m: float(row[m]) for m in QUALITY_METRICS}
    scores.update(main_score=float(row["main_score"]), hf_subset=str(row["subset"]),
                  languages=_languages(row["task_name"]))  # fmt: skip
    finished = manifest.get("finished_at") or manifest.get("started_at")
    return {
        "dataset_revision": str(row["dataset_revision"] or "unknown"),
        "task_name": row["task_name"],
        "mteb_version": manifest.get("packages", {}).get("mteb", "2.0.0"),
        "scores": {str(row["split"]): [scores]},
        "evaluation_time": float(row["eval_seconds"]),
        "kg_co2_emissions": None,
        "date": datetime.fromisoformat(finished).timestamp() if finished else None,
    }


def export_mteb(run_dir: Path, out: Path) -> list[Path]:
    """Write every cell of a finished run; returns the files written."""
    manifest, rows = results.read_run(run_dir)
    written = []
    for _, row in rows.iterrows():
        multiplier = f"-m{int(row['rescore_multiplier'])}" if row["rescore_multiplier"] else ""
        experiment = f"{row['backend']}__{int(row['dim'])}__{row['precision']}{multiplier}"
        model_dir = str(row["model_name"]).replace("/", "__")
        path = Path(out) / experiment / model_dir / str(row["model_revision"]) / f"{row['task_name']}.json"
        results.write_json(path, task_result(row, manifest))
        written.append(path)
    return written
