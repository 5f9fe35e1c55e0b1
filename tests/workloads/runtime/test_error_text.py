"""A handler's error text may hold anything (NUL, terminal escapes, lone surrogates): it is stored
and dead-lettered with those characters written as escapes, on every provider."""

from __future__ import annotations

from workloads.models import WorkOutcome
from workloads.providers.base import ATTR_ERROR_MESSAGE, ATTR_ERROR_TYPE
from workloads.runtime.errors import PermanentError, printable

from .conftest import document, running

HOSTILE = "bad byte \x00 at 12,\x1b[31m red\x1b[0m\r\x07 and \ud800; tab\tand\nnewline stay"
SHOWN = "bad byte \\x00 at 12,\\x1b[31m red\\x1b[0m\\r\\x07 and \\ud800; tab\tand\nnewline stay"


def test_printable_escapes_control_characters_and_surrogates():
    assert printable(HOSTILE) == SHOWN
    assert printable("plain text, accents é and emoji 🚀") == "plain text, accents é and emoji 🚀"


def test_a_handler_error_with_control_characters_is_dead_lettered_with_its_text(setup):
    workload_class = setup.make_class(max_delivery_attempts=5)

    def handler(payload, context):
        raise PermanentError(HOSTILE)

    setup.publish(workload_class, [document(1)])
    with running(setup.worker(workload_class, handler)):
        [dead] = setup.dead_letters(workload_class, expect=1)
    assert dead.attributes[ATTR_ERROR_TYPE] == "PermanentError"
    assert dead.attributes[ATTR_ERROR_MESSAGE] == SHOWN  # the real error, not the backstop's
    [row] = setup.results(workload_class)
    assert (row.outcome, row.attempts, row.error_message) == (WorkOutcome.DEAD_LETTERED, 1, SHOWN)
