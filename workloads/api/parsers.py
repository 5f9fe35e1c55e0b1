"""Request parsers of the API."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from workloads.domain.payloads import MAX_NESTING_DEPTH, NUL_CODE, hostile_input_error


class PayloadJSONParser(parsers.JSONParser):
    """DRF's JSON parser (strict: NaN and Infinity are refused), where input nested past Python's
    recursion limit is a 400 like any other unparsable body instead of a RecursionError (a 500).
    The ingestion endpoint uses it as is: event payloads are checked per event, with their path
    (workloads/domain/payloads.py: `hostile_input_error`)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested too deep (at most {MAX_NESTING_DEPTH} levels).") from None


class JSONParser(PayloadJSONParser):
    """JSON that PostgreSQL can store and that stays JSON: no NUL characters (stored in neither
    text nor jsonb: a database error, a 500, deep inside a lookup or a save), no lone surrogates,
    no non-finite numbers such as 1e999, nesting within the payload limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        # Nesting is measured from the body; a payload inside it gets the same limit on its own.
        problem = hostile_input_error(data, max_depth=MAX_NESTING_DEPTH + 2, allow_nul=False)
        if problem is not None and problem.code == NUL_CODE:
            raise ParseError("JSON strings may not contain NUL (\\u0000) characters.")
        if problem is not None:
            where = f" at {problem.field}" if problem.field else ""
            raise ParseError(f"JSON parse error{where}: {problem.message}")
        return data
