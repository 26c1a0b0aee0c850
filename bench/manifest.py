"""The run manifest: what ran, on what, with which code, and whether it finished."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from bench import environment, results
from bench.planning import Plan, config_dict, config_fingerprint


def write_manifest(the_plan: Plan, run_dir: Path, started: datetime, finished: datetime | None) -> None:
    config = the_plan.config
    manifest = {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_dir.name,
        "status": "finished" if finished else "running",
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat() if finished else None,
        "config_fingerprint": config_fingerprint(config),
        "inputs_fingerprint": the_plan.inputs_fingerprint(),
        "task_digests": the_plan.task_digests,
        "config": config_dict(config),
        "seed": config.seed,
        **environment.git_state(),
        "packages": environment.package_versions(),
        "machine": environment.machine(),
        "models": {k: asdict(m) for k, m in the_plan.models.items()},
        "tasks": {k: {**asdict(t), "path": str(t.path)} for k, t in the_plan.tasks.items()},
    }
    results.write_json(run_dir / results.MANIFEST, manifest)
