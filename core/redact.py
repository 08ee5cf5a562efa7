"""Secrets masked by their shape, wherever text leaves the process (logs, history reasons).

Replacing the configured secret string is not enough: a webhook URL written as a TOML table,
with a space inside, or as an ``env:`` value that was resolved differently still carries its
token, and an error message may quote it. So the masking here goes by what a secret looks
like, not by what the config says:

- a Discord-style webhook path ``/webhooks/<id>/<token>``: the token (and the rest of it
  after a space, a word with a digit, ``_`` or ``-``) becomes ``***``;
- a Slack incoming webhook ``/services/T.../B.../<token>``: everything after ``/services/``;
- Slack tokens (``xoxb-...``, ``xoxp-...``, ``xapp-...``);
- a password in a URL (``scheme://user:PASSWORD@host``);
- secret-looking query values (``?token=``, ``key=``, ``password=``, ``sig=`` ...);
- ``Bearer`` credentials and 17TRACK's ``17token`` header.

``install_log_redaction()`` makes every log record's message (and traceback) pass through
:func:`redact`; it is idempotent and called by the engine and the listener.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any, Final

__all__ = ["install_log_redaction", "mask_url", "redact"]

_MASK: Final = "***"
_STOP: Final = r"\s'\"<>)\]},"
# The second half of a token that a space cut in two: a word with a digit, "_" or "-" in it
# (a plain word after the URL, "failed", is left alone).
_GLUED: Final = r"(?: (?=[A-Za-z0-9_\-]*[0-9_\-])[A-Za-z0-9_\-]{3,})?"
_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # /webhooks/<id>/<token>[ glued word]: Discord (and look-alikes)
    (
        re.compile(rf"(/webhooks/[^/{_STOP}]+/)[^{_STOP}]+{_GLUED}"),
        rf"\1{_MASK}",
    ),
    # Slack incoming webhooks: /services/T000/B000/XXXX
    (re.compile(rf"(/services/)T[^{_STOP}]+{_GLUED}"), rf"\1{_MASK}"),
    # Slack tokens
    (re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9_\-]+"), rf"\1-{_MASK}"),
    # scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@'\"]*:)[^@\s/'\"]+@"), rf"\1{_MASK}@"),
    # secret-looking query parameters
    (
        re.compile(
            r"(?i)([?&;](?:password|passwd|pwd|secret|token|access_token|api_key|apikey|key|"
            r"sig|signature|auth)=)[^&\s'\"<>#]+"
        ),
        rf"\1{_MASK}",
    ),
    # Authorization: Bearer ... / 17token: ...
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]+"), rf"\1{_MASK}"),
    (re.compile(r"(?i)(\b17token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), rf"\1{_MASK}"),
)
_HINT: Final = re.compile(r"(?i)webhooks/|services/|xox|xapp|://|token|key=|bearer|sig|secret|pass")


def redact(text: str) -> str:
    """``text`` with every secret-shaped part replaced by ``***`` (see the module doc)."""
    if not text or not _HINT.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _RedactedRecord(logging.LogRecord):
    """A log record whose formatted message and traceback are redacted."""

    def getMessage(self) -> str:
        return redact(super().getMessage())


_installed = False


def install_log_redaction() -> None:
    """Make every log record redact its message and traceback (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if type(record) is logging.LogRecord:
            record.__class__ = _RedactedRecord
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_text = record.exc_text.rstrip("\n")
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


# A store URL in a message: its password and secret-looking options masked.
_SECRET_QUERY_RE = re.compile(r"(?i)((?:password|passwd|pwd|secret|token|key)=)[^&]*")
_USERINFO_RE = re.compile(r"(//[^/:@]*:)[^@/]*@")


def mask_url(url: str) -> str:
    """``url`` with its password (and secret-looking query values) replaced by ``***``."""
    masked = _USERINFO_RE.sub(r"\1***@", url)
    return _SECRET_QUERY_RE.sub(r"\1***", masked)
