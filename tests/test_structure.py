"""The package's structure: no import cycles, and no module reaching into another's private names.

Every import statement in ``bench/`` counts, at module level or inside a function: a cycle through
a lazy import is still two modules that need each other."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "bench"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every bench import in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "bench"]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, name, path.name == "__init__.py")
            if module.split(".")[0] != "bench":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (module, alias.name, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    return {name: {m for m, _, _ in _imports(name, path) if m != name} for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt in graph and not state.get(nxt):
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if not state.get(node):
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _private_reach_ins() -> list[str]:
    found = []
    for name, path in MODULES.items():
        imports = _imports(name, path)
        found += [f"{path.name}:{line}: from {m} import {n}" for m, n, line in imports
                  if n and n.startswith("_") and not n.startswith("__")]  # fmt: skip
        aliases = _module_aliases(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):  # fmt: skip
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def _module_aliases(path: Path) -> set[str]:
    """Local names bound to bench modules (``from bench import runner``, ``import bench.x as y``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench"):
            names |= {a.asname or a.name for a in node.names if f"{node.module}.{a.name}" in MODULES}
        elif isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.asname and a.name in MODULES}
    return names


def test_no_module_uses_another_modules_private_names():
    assert _private_reach_ins() == []


def test_the_encoders_never_import_task_code():
    graph = _graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for name in [m for m in MODULES if m.startswith("bench.encoders")]:
        assert not reach(name) & {"bench.tasks", "bench.taskdata", "bench.beir", "bench.mteb_tasks"}, name


def test_retired_model_keys_are_refused_with_what_to_do(toy_tasks_dir):
    import pytest

    from bench.errors import InputError
    from bench.models import model_registry
    from bench.testing import write_models
    from tests.conftest import TOY_MODEL

    for key, advice in [("loader", "the backend decides"), ("context_length", "max_length"), ("notes", "YAML comment")]:
        write_models(toy_tasks_dir, {"toy": {**TOY_MODEL, key: "x"}})
        with pytest.raises(InputError, match=f"key '{key}' is not used by bench.*{advice}"):
            model_registry(toy_tasks_dir)


def test_mrl_dims_are_read_and_checked(toy_tasks_dir):
    import pytest

    from bench.errors import InputError
    from bench.models import model_registry
    from bench.testing import write_models
    from tests.conftest import TOY_MODEL

    write_models(toy_tasks_dir, {"toy": {**TOY_MODEL, "mrl_dims": [16, 8, 32]}})
    assert model_registry(toy_tasks_dir).get("toy").mrl_dims == (8, 16, 32)
    write_models(toy_tasks_dir, {"toy": {**TOY_MODEL, "mrl_dims": [64]}})
    with pytest.raises(InputError, match="mrl_dims must be integers in 1..32, got 64"):
        model_registry(toy_tasks_dir)
