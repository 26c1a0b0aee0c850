"""Write a run's results in MTEB's result layout, one experiment folder per cell setting.

``OUT/<experiment>/<org__model>/<revision>/<Task>.json`` where the experiment is
``<backend>__<dim>__<precision>`` (plus ``m<m>`` for a rescoring cell), with MTEB's ``model_meta.json`` beside each task file: each
folder can be compared with, or submitted to, the MTEB results repository as the results of that
configuration. One ``TaskResult`` per task holds every split and subset the run evaluated
(``scores[split]`` is a list over subsets with ``hf_subset`` and ``languages``), so MTEB's own
``get_score()`` gives the task's aggregate. The mteb version is the one the run recorded, the
dataset revision the task's; a run that lacks either is refused rather than given a made-up one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from bench import results
from bench.cache import atomic_write_bytes
from bench.errors import InputError
from bench.metrics import QUALITY_METRICS
from bench.names import file_stem

FILE_KEYS = ("backend", "dim", "precision", "rescore_multiplier", "context", "model", "task_name")


def mteb_version(manifest: dict) -> str:
    """The mteb version the run recorded (its rules are the ones bench's scores follow)."""
    version = manifest.get("packages", {}).get("mteb")
    if not version:
        raise InputError("the run's manifest records no mteb version (mteb was not installed); "
                         "cannot write MTEB results")  # fmt: skip
    return str(version)


def subset_scores(row: pd.Series, manifest: dict) -> dict:
    """One entry of ``scores[split]``: every metric, ``main_score``, ``hf_subset``, ``languages``."""
    languages = list(manifest["tasks"][row["task"]].get("languages") or [])
    if not languages:
        raise InputError(f"task {row['task']} declares no languages (add `languages:` to its YAML); "
                         "MTEB's get_score() skips entries without them")  # fmt: skip
    scores = {m: float(row[m]) for m in QUALITY_METRICS}
    return {**scores, "main_score": float(row["main_score"]), "hf_subset": str(row["subset"]), "languages": languages}


def task_result(group: pd.DataFrame, manifest: dict) -> dict:
    """One MTEB TaskResult document for one task of one cell setting (rows in run order)."""
    first = group.iloc[0]
    revisions = set(group.dataset_revision.fillna(""))
    if revisions == {""} or len(revisions) > 1:
        raise InputError(f"task {first['task_name']}: dataset revision {sorted(revisions)} is not one known value "
                         "(declare `revision:` in its YAML)")  # fmt: skip
    scores: dict[str, list[dict]] = {}
    for _, row in group.iterrows():
        scores.setdefault(str(row["split"]), []).append(subset_scores(row, manifest))
    finished = manifest.get("finished_at") or manifest.get("started_at")
    return {
        "dataset_revision": revisions.pop(),
        "task_name": str(first["task_name"]),
        "mteb_version": mteb_version(manifest),
        "scores": scores,
        "evaluation_time": float(group.eval_seconds.sum()),
        "kg_co2_emissions": None,
        "date": datetime.fromisoformat(finished).timestamp() if finished else None,
    }


def model_meta(row: pd.Series, manifest: dict) -> dict:
    """MTEB's ``model_meta.json`` content (``ModelMeta.to_dict``) for the model of one cell setting;
    ``embed_dim`` is the cell's dimension, the width its vectors have."""
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    spec = manifest.get("models", {}).get(row["model"], {})  # a lexical baseline has no registry entry
    meta = ModelMeta.create_empty(overwrites={
        "name": str(row["model_name"]), "revision": str(row["model_revision"]),
        "embed_dim": int(row["dim"]) or None,
        "max_tokens": spec.get("max_length") or None, "n_parameters": spec.get("n_parameters") or None,
        "license": spec.get("license") or None, "similarity_fn_name": ScoringFunction("cosine"), "modalities": ["text"],
    })  # fmt: skip
    return meta.to_dict()


def _validated(document: dict, where: Path) -> None:
    """Check a document against mteb's own TaskResult model before writing it."""
    from mteb.results import TaskResult

    try:
        TaskResult.model_validate(document)
    except ValueError as exc:
        raise InputError(f"{where}: not a valid MTEB TaskResult: {str(exc).splitlines()[0]}") from None


def _component(value: str, what: str) -> str:
    """One folder name of MTEB's layout, as MTEB writes it; never a path that leaves ``out``."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        raise InputError(f"{what} {value!r} cannot be a folder of MTEB's result layout")
    return value


def _whole_tasks_by_mtebs_rules(run_dir: Path, manifest: dict, rows: pd.DataFrame) -> None:
    """An MTEB result is a whole task scored by MTEB's rules: a ``--limit`` subset, or a task
    whose queries were filtered by another rule (``query_filter: positive`` inflates the mean),
    would read as MTEB's score of the task, so neither is exported."""
    limit = (manifest.get("config") or {}).get("limit")
    if limit:
        raise InputError(f"{run_dir}: the run scored a --limit {limit} subset of its tasks; an MTEB result is of the "
                         "whole task, so it is not exported (run the sweep without --limit)")  # fmt: skip
    if "query_filter" in rows:
        other = sorted(set(rows.loc[rows.query_filter.fillna("mteb") != "mteb", "task"]))
        if other:
            raise InputError(f"{run_dir}: task(s) {', '.join(other)} filter queries by a rule other than MTEB's "
                             "(query_filter); their scores are not MTEB's, so they are not exported")  # fmt: skip


def export_mteb(run_dir: Path, out: Path) -> list[Path]:
    """Write every task of every cell setting of a finished run; returns the task files written."""
    manifest, rows = results.read_run(run_dir)
    _whole_tasks_by_mtebs_rules(run_dir, manifest, rows)
    written: list[Path] = []
    for _, group in rows.groupby(list(FILE_KEYS), sort=False):
        first = group.iloc[0]
        multiplier = [f"m{int(first['rescore_multiplier'])}"] if first.get("rescore_multiplier") else []
        context = [f"ctx-{first['context']}"] if first["context"] != "independent" else []
        folder = Path(out) / file_stem(first["backend"], int(first["dim"]), first["precision"], *multiplier, *context)
        folder = folder / _component(str(first["model_name"]).replace("/", "__").replace(" ", "_"), "model name")
        folder = folder / _component(str(first["model_revision"]), "model revision")
        path = folder / f"{first['task_name']}.json"
        if path in written:
            raise InputError(f"{path}: two models of the run share this name and revision; export one of them")
        document = task_result(group, manifest)
        _validated(document, path)
        results.write_json(path, document)
        meta = json.dumps(model_meta(first, manifest), default=str, indent=4)
        atomic_write_bytes(folder / "model_meta.json", meta.encode("utf-8"))
        written.append(path)
    return written
