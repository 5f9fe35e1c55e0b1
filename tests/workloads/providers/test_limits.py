"""Pub/Sub's limits in bytes of UTF-8, checked with multi-byte text (docs/gcp.md, "Limits")."""

from workloads.providers.base import OutboundMessage
from workloads.providers.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    message_problems,
    message_size,
    truncate_utf8,
)
from workloads.runtime.errors import error_message


def test_truncation_counts_bytes_and_never_cuts_a_character():
    assert truncate_utf8("déjà vu", 100) == "déjà vu"
    for text in ("é" * 600, "日本語" * 400, "a" + "😀" * 300):
        for limit in (1024, 1023, 1022, 10, 3, 4):
            cut = truncate_utf8(text, limit)
            assert len(cut.encode("utf-8")) <= limit
            assert cut.endswith("…") and text.startswith(cut[:-1])
    # The longest prefix that fits: 1,024 - 3 bytes of "…" leaves 510 two-byte characters.
    assert truncate_utf8("é" * 600, 1024) == "é" * 510 + "…"


def test_a_french_error_of_a_thousand_characters_fits_an_attribute_value():
    text = error_message(ValueError("é" * 1000))  # 1,000 characters, 2,000 bytes
    assert len(text.encode("utf-8")) <= MAX_ATTRIBUTE_VALUE_BYTES
    assert text == "é" * 510 + "…"
    assert error_message(ValueError("x" * 5000)) == "x" * 999 + "…"  # ASCII: the character cap binds


def test_limits_are_checked_in_bytes_not_characters():
    assert message_problems(OutboundMessage(b"x", {"msg": "é" * 512}, ordering_key="ö" * 512)) == []
    [problem] = message_problems(OutboundMessage(b"x", {"msg": "é" * 513}))
    assert "1026 bytes" in problem and "1024 bytes" in problem and "'msg'" in problem
    [problem] = message_problems(OutboundMessage(b"x", ordering_key="日" * 342))  # 1,026 bytes
    assert "ordering key" in problem
    [problem] = message_problems(OutboundMessage(b"x", {"é" * 129: "v"}))  # 258 bytes
    assert "256 bytes" in problem


def test_the_message_size_counts_data_and_attributes():
    message = OutboundMessage(b"x" * 9_999_990, {"clé": "é" * 4})
    assert message_size(message) == 9_999_990 + 4 + 8
    [problem] = message_problems(message)
    assert "10000000 bytes" in problem
