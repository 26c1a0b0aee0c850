"""Errors the harness raises on purpose, each with its process exit code.

Anything else that escapes is a bug. The CLI prints a ``BenchError`` as one line and exits
with its code; nothing is written to the results directory before inputs are validated.
"""

from __future__ import annotations

import json
from difflib import get_close_matches
from typing import Iterable


class BenchError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 1


class InputError(BenchError):
    """Bad input: a configuration, task file, flag or value the harness cannot accept."""

    exit_code = 2


class Unavailable(InputError):
    """Something this machine lacks for the input asked of it: the model hub, a GPU, weights not
    on disk. No other task or row can do better, so whatever runs many of them stops at the first."""


class EncoderError(BenchError):
    """A backend returned something unusable (wrong shape, NaN or Inf)."""

    exit_code = 3


class StorageError(BenchError):
    """The results folder or cache cannot be written (permissions, full disk)."""

    exit_code = 4


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return a ' (did you mean ...?)' hint for a misspelt name, or an empty string."""
    matches = get_close_matches(value, list(choices), n=2, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def unknown(kind: str, value: str, choices: Iterable[str]) -> InputError:
    """Build the error for an unknown name, with suggestions and the valid choices."""
    choices = sorted(choices)
    return InputError(
        f"unknown {kind} {value!r}{did_you_mean(value, choices)}; choose from: {', '.join(choices)}"
    )


def parse_json(text: str | bytes, where: str):
    """``json.loads``, with every refusal of the parser one ``InputError`` naming ``where``: malformed
    JSON, and what Python's parser raises besides (nesting too deep for its recursion, an integer
    of more digits than Python converts)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: malformed JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(f"{where}: malformed JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise InputError(f"{where}: malformed JSON ({str(exc).split(';')[0]:.120})") from None
