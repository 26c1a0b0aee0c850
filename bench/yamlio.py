"""YAML reading that remembers line numbers, so errors can name ``file:line``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from bench.errors import InputError, did_you_mean


class LineDict(dict):
    """A dict from YAML that knows the file and the line of itself and of each key."""

    source: str = "<string>"
    line: int = 0
    key_lines: dict[str, int]

    def where(self, key: str | None = None) -> str:
        """``file:line`` of ``key`` (or of the mapping itself)."""
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return f"{self.source}:{line}"


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.source = loader.name
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            raise InputError(f"{loader.name}:{line}: duplicate key {key!r}")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; syntax errors become an ``InputError`` naming file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InputError(f"{path}:{line}: invalid YAML: {exc.problem or exc}") from None
    finally:
        loader.dispose()


def require_mapping(value: Any, where: str) -> LineDict:
    """Insist that a YAML value is a mapping."""
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value if isinstance(value, LineDict) else _as_linedict(value, where)


def _as_linedict(value: Mapping, where: str) -> LineDict:
    out = LineDict(value)
    out.source, out.line, out.key_lines = where, 0, {}
    return out


def check_keys(mapping: LineDict, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    """Reject unknown keys (with did-you-mean) and missing required keys."""
    allowed = list(allowed)
    for key in mapping:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed)
            raise InputError(f"{mapping.where(key)}: unknown key {key!r}{hint}")
    for key in required:
        if key not in mapping:
            raise InputError(f"{mapping.where()}: missing required key {key!r}")


def typed(mapping: LineDict, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """Read ``mapping[key]`` and check its type (bool is not accepted as int)."""
    if key not in mapping:
        return default
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = "/".join(k.__name__ for k in kinds)
        raise InputError(f"{mapping.where(key)}: {key} must be {names}, got {value!r}")
    return value
