"""Names that become paths, checked in one place.

Run ids, model keys, task names (and the parts of ``mteb:<Task>/<subset>@<split>``), backend
names and splits end up in folder and file names. Each must be one path component from a small
character set, so no name can point outside the folder it is written into:

- 1 to 100 characters from ``A-Z a-z 0-9 . _ + -``;
- starting with a letter or digit (so never ``.``, ``..``, a hidden file or an option);
- no ``/``, no ``\\``, no NUL, no space, nothing absolute.

Anything else is an input error (exit code 2) before anything is written. ``child`` joins a
checked name to its folder and verifies the result lies directly inside it, and ``file_stem``
turns several names into one file name that two different tuples never share.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from bench.errors import InputError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
NAME_RULE = "1-100 characters from A-Z a-z 0-9 . _ + -, starting with a letter or digit"


def check_name(value: object, what: str) -> str:
    """``value`` if it is a valid name, else an ``InputError`` naming ``what`` and the value."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60] + "...")
        raise InputError(f"{what} {shown} is not a valid name ({NAME_RULE})")
    return value


def child(folder: Path, name: str, what: str) -> Path:
    """``folder / name`` for a checked name, verified to lie directly inside ``folder``."""
    path = Path(folder) / check_name(name, what)
    if path.parent != Path(folder) or path.name != name:  # belt and braces: the pattern allows no other case
        raise InputError(f"{what} {name!r} does not name a folder inside {folder}")
    return path


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")


def file_stem(*parts: object) -> str:
    """One file name for a tuple of names: readable, at most ~150 characters, and injective.

    Parts that are plain (letters, digits, ``. + -``) are joined with ``__`` as they are; any other
    part (with ``_``, ``:``, ``/``, ``@`` or anything else) is made safe and the stem gets a short
    digest of the exact tuple, so ``('A B',)`` and ``('A_B',)`` never share a file."""
    texts = [str(p) for p in parts]
    if all(_PLAIN.fullmatch(t) for t in texts) and sum(map(len, texts)) <= 120:
        return "__".join(texts)
    safe = "__".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", t).strip("-.") or "x" for t in texts)[:120]
    digest = hashlib.sha256(json.dumps(texts).encode("utf-8")).hexdigest()[:10]
    return f"{safe}-{digest}"
