from workloads.providers.base import ProviderError
from workloads.runtime.errors import (
    HandlerTimeout,
    Kind,
    PayloadInvalid,
    PermanentError,
    TransientError,
    classify,
    error_message,
    error_signature,
    error_type,
    normalize_message,
)


def test_it_strips_what_varies_between_occurrences_of_one_error():
    assert normalize_message("Document 'doc-991' failed at byte 48213") == "Document ? failed at byte <n>"
    assert normalize_message('Key "acme:doc-1:3"   not\tfound') == "Key ? not found"
    assert normalize_message("job 3f2a9c4e-1b7d-4e8f-9a6b-0c1d2e3f4a5b lost") == "job <id> lost"
    assert normalize_message("lease a3f9c2e1b7 expired at 0x7f3a") == "lease <id> expired at <id>"
    assert normalize_message("timeout after 2.5 s (HTTP 503)") == "timeout after <n> s (HTTP <n>)"
    # Words that merely look like hex, and plain words, stay.
    assert normalize_message("deadbeef cafe added") == "deadbeef cafe added"


def test_one_cause_has_one_signature_and_different_causes_differ():
    one = error_signature("DocumentCorrupt", "Unexpected end of stream at byte 4821 in document 'd-1' revision 3")
    same = error_signature("DocumentCorrupt", "Unexpected end of stream at byte 17 in document 'x-99' revision 1")
    other_message = error_signature("DocumentCorrupt", "Bad header at byte 17 in document 'x-99' revision 1")
    other_type = error_signature("ValueError", "Unexpected end of stream at byte 17 in document 'x-99' revision 1")
    assert one == same
    assert len({one, other_message, other_type}) == 3
    assert len(one) == 16 and int(one, 16) >= 0


def test_the_signature_is_stable_across_releases():
    # Stored in dead letters and grouped on: changing the recipe would split every existing group.
    # sha256("TransientError\nBackend unavailable (HTTP <n>)")[:16]
    assert error_signature("TransientError", "Backend unavailable (HTTP 503)") == "6ff58cf6fdb45940"


def test_errors_are_classified():
    assert classify(PermanentError("no")) is Kind.PERMANENT
    assert classify(PayloadInvalid("not json")) is Kind.PERMANENT
    assert classify(ProviderError("denied", permanent=True)) is Kind.PERMANENT
    assert classify(ProviderError("unavailable", permanent=False)) is Kind.TRANSIENT
    assert classify(TransientError("busy")) is Kind.TRANSIENT
    assert classify(HandlerTimeout("slow")) is Kind.TRANSIENT
    assert classify(ConnectionResetError("reset")) is Kind.TRANSIENT
    assert classify(TimeoutError()) is Kind.TRANSIENT
    assert classify(KeyError("surprise")) is Kind.TRANSIENT  # unclassified: retried up to max attempts


def test_error_type_and_message():
    class Custom(Exception):
        pass

    assert error_type(ValueError()) == "ValueError"
    assert error_type(TransientError()) == "TransientError"
    assert error_type(Custom()) == f"{__name__}.test_error_type_and_message.<locals>.Custom"
    assert error_message(ValueError("x" * 5000)) == "x" * 999 + "…"
    assert error_message(KeyError()) == "KeyError()"  # never empty
