"""Pub/Sub's documented resource limits, enforced in our code on every provider.

Google's emulator does not enforce all of them, and the local provider would accept anything, so
a message that real Pub/Sub refuses must be refused here first, the same way everywhere (Google's
Pub/Sub quotas page, "Resource limits"). Sizes are bytes of UTF-8, not characters: a French or
Japanese text of 1,000 characters can be 1,100 or 3,000 bytes.

Where cutting is right (an error text we attach for people to read), `truncate_utf8` cuts on a
character boundary; where it is not (a caller's key or payload), `message_problems` names the
limit and the caller refuses the message.
"""

from __future__ import annotations

from workloads.providers.base import OutboundMessage

MAX_MESSAGE_BYTES = 10_000_000  # data plus attribute keys and values ("10 MB")
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024
ELLIPSIS = "…"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` if it fits in `max_bytes` of UTF-8, else its longest prefix that fits with a
    trailing "…", never cutting a character in half."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    room = max(0, max_bytes - utf8_len(ELLIPSIS))
    return encoded[:room].decode("utf-8", errors="ignore") + ELLIPSIS


def message_size(message: OutboundMessage) -> int:
    """The size Pub/Sub counts against its message limit: data, attribute keys and values."""
    return len(message.data) + sum(utf8_len(key) + utf8_len(value) for key, value in message.attributes.items())


def message_problems(message: OutboundMessage) -> list[str]:
    """Each limit the message breaks, as a sentence naming it; empty when Pub/Sub would take it."""
    problems = []
    if len(message.attributes) > MAX_ATTRIBUTES:
        problems.append(f"{len(message.attributes)} attributes is over Pub/Sub's limit of {MAX_ATTRIBUTES}.")
    for key, value in message.attributes.items():
        if not key:
            problems.append("An attribute key is empty; Pub/Sub refuses empty keys.")
        elif utf8_len(key) > MAX_ATTRIBUTE_KEY_BYTES:
            problems.append(
                f"The attribute key {key[:40]!r}… is {utf8_len(key)} bytes of UTF-8, over Pub/Sub's limit of "
                f"{MAX_ATTRIBUTE_KEY_BYTES} bytes."
            )
        if utf8_len(value) > MAX_ATTRIBUTE_VALUE_BYTES:
            problems.append(
                f"The value of attribute {key[:40]!r} is {utf8_len(value)} bytes of UTF-8, over Pub/Sub's limit "
                f"of {MAX_ATTRIBUTE_VALUE_BYTES} bytes."
            )
    if utf8_len(message.ordering_key) > MAX_ORDERING_KEY_BYTES:
        problems.append(
            f"The ordering key is {utf8_len(message.ordering_key)} bytes of UTF-8, over Pub/Sub's limit of "
            f"{MAX_ORDERING_KEY_BYTES} bytes."
        )
    size = message_size(message)
    if size > MAX_MESSAGE_BYTES:
        problems.append(
            f"The message is {size} bytes (data and attributes), over Pub/Sub's limit of {MAX_MESSAGE_BYTES} bytes."
        )
    return problems
