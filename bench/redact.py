"""One redaction rule for everything bench prints, logs or writes.

Secrets reach bench in two ways: API keys read from the environment (registered here by the
backend that reads them) and credentials written into URLs (``https://user:KEY@host``,
``?api_key=KEY``). ``redact`` replaces every registered value, every URL password and user, and
the value of every secret-looking query parameter or header with ``***``. It is applied to the
one-line error the CLI prints, to every log record (bench's own and third-party libraries':
httpx, httpcore, urllib3, at any verbosity, through ``RedactingFilter`` on the handlers), and to
anything a remote server sends back that ends up in a message.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()

# user:password@ in any URL
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
# api_key=..., token=..., in URLs, form bodies and messages; also "Authorization: Bearer x"
_SECRET_PARAM = re.compile(
    r"(?i)(?P<key>\b(?:api[_-]?key|apikey|key|token|access[_-]?token|auth|secret|password|passwd|sig|signature"
    r"|client[_-]?secret|x-api-key)\b\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s&\"',;}]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<key>bearer|basic)\s+(?P<value>[A-Za-z0-9._~+/=-]{4,})")
_MIN_SECRET = 4  # shorter values would mask ordinary words


_MIN_FRAGMENT = 8  # base64 fragments shorter than this could match ordinary text


def _base64_fragments(value: str) -> set[str]:
    """The base64 characters that ``value``'s bytes alone decide, at each of the three byte
    alignments it can have inside a longer encoded text (``Bearer KEY``, ``user:KEY``, a JSON
    body), in the standard and the URL-safe alphabet."""
    raw, out = value.encode("utf-8"), set()
    for offset in range(3):
        start, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6  # whole 6-bit groups of raw
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            fragment = encode(b"\0" * offset + raw).decode("ascii")[start:end]
            if len(fragment) >= _MIN_FRAGMENT:
                out.add(fragment)
    return out


def variants(value: str) -> set[str]:
    """The forms a secret takes when a server echoes it back: as it is, URL-encoded, JSON-escaped
    (with ``/`` escaped too, as some encoders write it) and base64-encoded inside a longer text."""
    escaped = json.dumps(value)[1:-1]
    forms = {value, quote(value, safe=""), quote_plus(value), escaped, escaped.replace("/", "\\/")}
    return {f for f in forms if len(f) >= _MIN_SECRET} | _base64_fragments(value)


def register_secret(value: str | None) -> None:
    """Remember a secret value (and the forms an echo can give it) so that ``redact`` removes it
    from any text."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _secrets.update(variants(value))


def redact(text: object, cut: bool = False) -> str:
    """``text`` with every known secret, URL credential and secret-looking parameter masked.
    ``cut``: the text was cut off (a bounded read of a body), so a secret's first characters at
    its very end are masked too."""
    out = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    if cut:
        out = _mask_cut_prefix(out, secrets)
    out = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + MASK + "@", out)
    out = _SECRET_PARAM.sub(lambda m: m.group("key") + MASK, out)
    return _BEARER.sub(lambda m: f"{m.group('key')} {MASK}", out)


def _mask_cut_prefix(text: str, secrets: list[str]) -> str:
    """Mask the longest start of any secret (at least ``_MIN_SECRET`` characters) that ends ``text``."""
    length = max((n for secret in secrets for n in range(_MIN_SECRET, len(secret)) if text.endswith(secret[:n])),
                 default=0)  # fmt: skip
    return text[:-length] + MASK if length else text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record still must not leak
        message = f"{record.msg} {record.args}"
    record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None


_installed = False


def install() -> None:
    """Redact every log record as it is created, whichever logger makes it (bench's, httpx's,
    httpcore's, urllib3's) and whichever handler shows it. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
