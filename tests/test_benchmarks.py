"""The benchmark scripts stay runnable: every name they take from ``bench`` exists (a renamed or
removed function fails here, not halfway through a 10-minute measurement) and each answers --help."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _bench_references(tree: ast.AST) -> list[tuple[str, str, int]]:
    """(module, attribute, line) for each ``from bench.x import name`` and each ``module.attr``
    where ``module`` was imported from ``bench``."""
    modules: dict[str, str] = {}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                try:
                    importlib.import_module(target)
                    modules[alias.asname or alias.name] = target
                except ImportError:
                    out.append((node.module, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "bench":
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            out.append((modules[node.value.id], node.attr, node.lineno))
    return out


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_every_name_a_benchmark_takes_from_bench_exists(script):
    for module, name, line in _bench_references(ast.parse(script.read_text(), str(script))):
        assert hasattr(importlib.import_module(module), name), f"{script.name}:{line}: {module}.{name} does not exist"


@pytest.mark.parametrize("script", [p for p in BENCHMARKS if p.suffix == ".py"], ids=lambda p: p.name)
def test_every_benchmark_answers_help(script):
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr[-2000:]
