"""How the worker kit classifies a handler's failure, and the signature dead letters are grouped by.

- `TransientError` (timeouts included), connection errors, database errors and transient provider
  errors: retried with backoff until the class's last delivery attempt, then dead-lettered.
- `PermanentError`, a payload that fails validation, and permanent provider errors: dead-lettered
  at once; retrying cannot help.
- Anything else (a bug, a corrupt input the handler did not anticipate) is retried like a transient
  error: the handler's author did not say it is hopeless, and the class's max delivery attempts
  bound what it costs. A poison message therefore reaches the dead-letter queue after max attempts.
"""

from __future__ import annotations

import enum
import hashlib
import re

from workloads.providers.base import ProviderError
from workloads.providers.limits import MAX_ATTRIBUTE_VALUE_BYTES, truncate_utf8

MAX_ERROR_MESSAGE_CHARS = 1000


class TransientError(Exception):
    """Raise from a handler for a failure that may pass: an unavailable backend, a rate limit."""


class PermanentError(Exception):
    """Raise from a handler for a failure that will happen again on every attempt."""


class HandlerTimeout(TransientError):
    """The handler ran past its class's timeout tier; the attempt counts as a timeout failure."""


class PayloadInvalid(PermanentError):
    """The message is not a payload of its class (not JSON, or not valid against the schema)."""


class Kind(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


def classify(error: BaseException) -> Kind:
    if isinstance(error, PermanentError):
        return Kind.PERMANENT
    if isinstance(error, ProviderError) and error.permanent:
        return Kind.PERMANENT
    return Kind.TRANSIENT


def error_type(error: BaseException) -> str:
    """The class name, qualified by its module unless it is a builtin or one of ours."""
    cls = type(error)
    if cls.__module__ in ("builtins", __name__):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# C0/C1 control characters except tab and newline, and lone surrogates: PostgreSQL refuses NUL
# in text and jsonb, surrogates are not UTF-8, and the others garble logs and terminals.
_UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """The text with each unsafe character written as its escape (NUL becomes the four
    characters \\x00), so any error a handler raises can be stored, sent and shown."""
    return _UNSAFE_CHARACTERS.sub(lambda match: ascii(match.group())[1:-1], text)


def error_message(error: BaseException) -> str:
    """The error text we record and attach to a dead letter: at most 1,000 characters and, since
    it travels as a Pub/Sub attribute value, at most 1,024 bytes of UTF-8 (cut on a character)."""
    text = str(error) or repr(error)
    return truncate_utf8(truncate(printable(text)), MAX_ATTRIBUTE_VALUE_BYTES)


def truncate(text: str, limit: int = MAX_ERROR_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Order matters: quoted values first (they may hold anything), then ids, then bare numbers.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# Hex ids: 0x..., or runs of 6+ hex digits mixing digits and letters (a word like "deadbeef" stays).
_HEX = re.compile(r"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")


def normalize_message(message: str) -> str:
    """The message with what varies between occurrences of one error taken out: quoted values,
    uuids and hex ids, numbers; whitespace collapsed. 'Document "d-1" failed at byte 4821' and
    'Document "x" failed at byte 17' both become 'Document ? failed at byte <n>'."""
    text = _QUOTED.sub("?", message)
    text = _UUID.sub("<id>", text)
    text = _HEX.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACE.sub(" ", text).strip()


def error_signature(error_type: str, message: str) -> str:
    """A stable 16-hex-digit hash of the error type and the normalized message: dead letters with
    one cause share it, whatever document, id or count their messages mention."""
    digest = hashlib.sha256(f"{error_type}\n{normalize_message(message)}".encode())
    return digest.hexdigest()[:16]
