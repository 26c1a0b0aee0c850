"""The benchmark scripts stay runnable: every name they take from ``bench`` exists (a renamed or
removed function fails here, not halfway through a 10-minute measurement) and each answers --help."""

from __future__ import annotations

import ast
import importlib
import importlib.util
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


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), BENCHMARKS[0].parent / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_backends_judges_each_backend_against_torch_at_torchs_fastest_batch_size():
    """Torch float32 can be slower at batch 64 than at 16 (it is on long texts on CPU); a backend
    fastest at 64 must be judged against torch at 16, not against torch's slow batch size."""
    cpu = _script("cpu_backends.py")
    ref = cpu.REFERENCE
    seconds = {(ref, 16): [1.0, 1.2, 1.1], (ref, 64): [1.5, 1.8, 1.6],
               ("fast", 16): [0.6, 0.6, 0.6], ("fast", 64): [0.5, 0.6, 0.5]}  # fmt: skip
    assert cpu.fastest(seconds, ref) == (ref, 16) and cpu.fastest(seconds, "fast") == ("fast", 64)
    same, against_best = cpu.ratios(seconds)[("fast", 64)]
    assert same == pytest.approx(3.0) and against_best == pytest.approx(2.0)  # round 2: 1.8/0.6, 1.2/0.6
    specs = [cpu.parse_backend("torch"), type("Spec", (), {"id": "fast"})()]
    line = cpu.verdict(specs, seconds, {ref: (0.6, 1.0), "fast": (0.6, 0.999)})
    assert "fast at batch size 64, 2.00x torch float32 at batch size 16" in line
    assert "its best ratio is 3.00x (batch size 64, where torch float32 runs at 0.67x its fastest)" in line
    for bad in ("", "16,0", "-4", "8,x", "16,16"):
        with pytest.raises(Exception, match="distinct positive"):
            cpu.batch_sizes(bad)
    assert cpu.batch_sizes("4,64") == (4, 64)


def test_cpu_backends_times_a_fixed_batch_backend_once_at_its_own_size():
    """onnx int8 runs one text at a time whatever it is given: it is timed once, at 1, and its
    same-batch-size ratio is left blank where torch was not timed at 1."""
    cpu = _script("cpu_backends.py")

    class Encoder:
        def __init__(self, fixed):
            self.fixed_batch_size = fixed

    made = []

    def make(model, spec, options):
        made.append((spec.id, options.batch_size))
        return Encoder(1 if spec.id == "one" else None)

    specs = [cpu.parse_backend("torch"), type("Spec", (), {"id": "one", "dtype": "int8"})()]
    original = cpu.make_encoder
    cpu.make_encoder = make
    try:
        encoders = cpu.timed_encoders(None, specs, (8, 16), None)
    finally:
        cpu.make_encoder = original
    assert sorted(encoders) == [("one", 1), (cpu.REFERENCE, 8), (cpu.REFERENCE, 16)]
    seconds = {(cpu.REFERENCE, 8): [1.0, 1.0], (cpu.REFERENCE, 16): [1.2, 1.2], ("one", 1): [0.5, 0.5]}
    assert cpu.ratios(seconds)[("one", 1)] == (None, pytest.approx(2.0))
    line = cpu.verdict(specs, seconds, {cpu.REFERENCE: (0.6, 1.0), "one": (0.6, 0.999)})
    assert "one at batch size 1, 2.00x torch float32 at batch size 8" in line and "not timed at its batch size" in line
