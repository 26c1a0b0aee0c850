"""YAML reading that remembers line numbers, so errors can name ``file:line``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import yaml

from bench.errors import InputError

log = logging.getLogger(__name__)

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
        if not isinstance(key, str):  # lists, mappings, numbers, yes/no: never a key bench knows
            raise InputError(f"{loader.name}:{line}: a key must be text, got {type(key).__name__} {key!r:.40}")
        if key in out:
            raise InputError(f"{loader.name}:{line}: duplicate key {key!r}")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# A configuration has hundreds of values; aliases that repeat aliases can make a few lines stand
# for billions (a "billion laughs" file), so the expanded size is bounded before construction.
MAX_NODES = 100_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (shared nodes counted
    each time they are used); computed once per node, so the check itself stays cheap."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # a node reached again while being sized is a cycle: too big
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = min(size, MAX_NODES + 1)
    return memo[key]


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; syntax errors become an ``InputError`` naming file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # a folder, a path through a file, no permission
        raise InputError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if text.startswith("\ufeff"):
        log.warning("%s: starts with a UTF-8 byte-order mark; ignoring it", path)
        text = text[1:]
    loader = None
    try:
        loader = _Loader(text)  # its reader refuses control characters here
        loader.name = str(path)
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise InputError(f"{path}: the YAML expands to more than {MAX_NODES:,} values (aliases "
                             "repeating aliases?); refusing to read it")  # fmt: skip
        return loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InputError(f"{path}:{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:  # the reader's: a control character
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 0
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        if isinstance(getattr(exc, "character", None), int):
            reason = f"character #x{exc.character:04x}: {reason}"
        raise InputError(f"{path}:{line}: invalid YAML: {reason}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
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
