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

import logging
import re
import threading

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


def register_secret(value: str | None) -> None:
    """Remember a secret value so that ``redact`` removes it from any text."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _secrets.add(value)


def redact(text: object) -> str:
    """``text`` with every known secret, URL credential and secret-looking parameter masked."""
    out = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    out = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + MASK + "@", out)
    out = _SECRET_PARAM.sub(lambda m: m.group("key") + MASK, out)
    return _BEARER.sub(lambda m: f"{m.group('key')} {MASK}", out)


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
