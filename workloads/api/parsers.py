"""Request parsers of the API."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class JSONParser(parsers.JSONParser):
    """JSON without NUL characters anywhere: PostgreSQL stores them in neither text nor jsonb, so
    one would otherwise surface as a database error (a 500) deep inside a lookup or a save.
    The ingestion endpoint keeps DRF's parser: event payloads travel as bytes."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if _has_nul(data):
            raise ParseError("JSON strings may not contain NUL (\\u0000) characters.")
        return data
