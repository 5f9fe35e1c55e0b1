"""Handlers for the four demo classes (`manage.py seed_demo`). Each does real work on its payload,
and fails on purpose now and then so the demo shows retries and dead letters:

- DEMO_TRANSIENT_FAILURE_RATE: the share of attempts that fail with a TransientError (retried);
- DEMO_POISON_RATE: the share of units that are poison, chosen by a hash of the idempotency key so a
  poison unit fails on every attempt. Its error is permanent for batch enrichment (dead-lettered at
  once) and unclassified elsewhere (retried until the class's last attempt, then dead-lettered).
- A payload with a top-level string value starting with "poison" (e.g. document_id "poison-1") is
  always poison: tests and demos can aim at the dead-letter path.
"""

from __future__ import annotations

import ast
import hashlib
import html.parser
import random
import re
from collections import Counter

from django.conf import settings

from workloads.runtime.context import WorkContext
from workloads.runtime.errors import PermanentError, TransientError
from workloads.runtime.registry import handler

POISON_MARKER = "poison"
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in is it its of on or that the this to was were will with".split()
)


# --- failure injection ------------------------------------------------------------------------------
def is_poison(payload: dict, context: WorkContext) -> bool:
    marked = any(isinstance(v, str) and v.lower().startswith(POISON_MARKER) for v in payload.values())
    return marked or _unit_fraction(context.idempotency_key) < settings.DEMO_POISON_RATE


def _unit_fraction(key: str) -> float:
    """A number in [0, 1) fixed per idempotency key: poison stays poison on every attempt."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def _flaky() -> bool:
    return random.random() < settings.DEMO_TRANSIENT_FAILURE_RATE


def _latency_ms() -> int:
    return random.randint(80, 4000)


# --- document processing -------------------------------------------------------------------------
class DocumentCorrupt(Exception):
    """The document cannot be parsed (not classified: retried, then dead-lettered)."""


class _HtmlText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.headings = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings += 1
        if tag in ("p", "div", "br", "li", "tr") or re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def document_stats(content: str, content_type: str) -> dict:
    """Extract text and count words, sections (headings) and pages."""
    pages = 1
    if content_type == "text/html":
        parser = _HtmlText()
        parser.feed(content)
        parser.close()
        text, sections = "".join(parser.parts), parser.headings
    else:
        # Plain text and text extracted from PDFs: Markdown-style headings, form feeds between pages.
        text = content
        sections = sum(1 for line in text.splitlines() if re.match(r"#{1,6}\s+\S", line.strip()))
        pages = text.count("\f") + 1
    words = _WORD.findall(text)
    if words and not sections:
        sections = 1  # a document with text and no headings is one section
    frequent = Counter(w.lower() for w in words if w.lower() not in STOPWORDS).most_common(5)
    return {
        "words": len(words),
        "sections": sections,
        "pages": pages,
        "characters": len(text),
        "top_words": [word for word, _ in frequent],
    }


@handler("documents-pool")  # the migration demo's Worker Pool side: the same work
@handler("document-processing")
@handler("document-processing-staging")  # staging's copy (demo/fleet.py)
def process_document(payload: dict, context: WorkContext) -> dict:
    if is_poison(payload, context):
        raise DocumentCorrupt(
            f"Unexpected end of stream at byte {len(payload.get('content', '')) + 4096} "
            f"in document '{payload['document_id']}' revision {payload['revision']}"
        )
    if _flaky():
        raise TransientError(f"Text extraction backend unavailable (HTTP 503) after {_latency_ms()} ms")
    stats = document_stats(payload.get("content", ""), payload["content_type"])
    context.meter.add(records=1)
    return {"document_id": payload["document_id"], "revision": payload["revision"], **stats}


# --- indexing ------------------------------------------------------------------------------------------
SUPPORTED_LANGUAGES = frozenset({"en", "fr", "de", "es"})


class MappingConflict(Exception):
    """The index rejects the document's fields (not classified: retried, then dead-lettered)."""


def index_entry(text: str) -> dict[str, list[int]]:
    """An inverted-index entry: each term (lower-cased, stop words dropped) and its positions."""
    postings: dict[str, list[int]] = {}
    for position, word in enumerate(_WORD.findall(text)):
        term = word.lower()
        if term not in STOPWORDS:
            postings.setdefault(term, []).append(position)
    return postings


@handler("indexing-pipeline")
def build_index_entry(payload: dict, context: WorkContext) -> dict:
    language = payload.get("language", "en").lower()
    if language not in SUPPORTED_LANGUAGES:
        raise PermanentError(f"Index {payload['index']!r} has no analyzer for language {language!r}")
    if is_poison(payload, context):
        raise MappingConflict(
            f"Mapping conflict in index '{payload['index']}': field 'body' is keyword, got text "
            f"(document '{payload['document_id']}' version {payload['version']})"
        )
    if _flaky():
        raise TransientError(f"Index shard {random.randint(0, 7)} is relocating; write rejected")
    summary = {"index": payload["index"], "document_id": payload["document_id"], "version": payload["version"]}
    context.meter.add(records=1)
    if payload["operation"] == "delete":
        return {**summary, "operation": "delete", "terms": 0}
    postings = index_entry(payload.get("text", ""))
    top = sorted(postings.items(), key=lambda item: (-len(item[1]), item[0]))[:5]
    return {
        **summary,
        "operation": "upsert",
        "terms": len(postings),
        "positions": sum(len(p) for p in postings.values()),
        "top_terms": {term: len(positions) for term, positions in top},
    }


# --- batch enrichment ----------------------------------------------------------------------------------
COUNTRIES = {
    "de": {"region": "EMEA", "currency": "EUR", "vat_rate": 0.19, "language": "de"},
    "fr": {"region": "EMEA", "currency": "EUR", "vat_rate": 0.20, "language": "fr"},
    "gb": {"region": "EMEA", "currency": "GBP", "vat_rate": 0.20, "language": "en"},
    "us": {"region": "AMER", "currency": "USD", "vat_rate": 0.0, "language": "en"},
    "jp": {"region": "APAC", "currency": "JPY", "vat_rate": 0.10, "language": "ja"},
    "br": {"region": "AMER", "currency": "BRL", "vat_rate": 0.17, "language": "pt"},
}
SIZE_BANDS = [(10, "micro"), (50, "small"), (250, "medium"), (1000, "large")]


def size_band(employees: int | None) -> str:
    if employees is None:
        return "unknown"
    for limit, band in SIZE_BANDS:
        if employees < limit:
            return band
    return "enterprise"


def enrich_record(payload: dict) -> tuple[dict, int]:
    """The enriched record and the model tokens a description of it would take (about 4
    characters per token, plus the prompt)."""
    reference = COUNTRIES[payload["country"]]
    domain = (payload.get("domain") or "").strip().lower().removeprefix("www.")
    name = (payload.get("company_name") or "").strip()
    enriched = {
        "record_id": payload["record_id"],
        **reference,
        "size_band": size_band(payload.get("employees")),
        "domain": domain,
        "tld": domain.rsplit(".", 1)[-1] if "." in domain else "",
        "display_name": " ".join(part.capitalize() if part.islower() else part for part in name.split()),
    }
    tokens = 60 + (len(name) + len(domain)) // 4
    return enriched, tokens


@handler("batch-enrichment")
@handler("batch-enrichment-staging")
def enrich(payload: dict, context: WorkContext) -> dict:
    if is_poison(payload, context):
        raise PermanentError(
            f"No reference data for domain '{payload.get('domain', '')}' (record '{payload['record_id']}')"
        )
    if _flaky():
        raise TransientError(f"Reference API rate limited (HTTP 429); retry after {random.randint(5, 30)} s")
    enriched, tokens = enrich_record(payload)
    context.meter.add(records=1, tokens=tokens)
    return enriched


# --- policy evaluation ----------------------------------------------------------------------------------
class PolicyEngineError(Exception):
    """The engine failed on a policy (not classified: retried, then dead-lettered)."""


_COMPARISONS = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_LITERALS = {"true": True, "false": False, "null": None}


def evaluate_policy(expression: str, subject: dict) -> bool:
    """Evaluate a policy such as `subject.role == "admin" or (subject.level >= 3 and subject.team in
    ["ops", "sre"])`: comparisons, and/or/not, literals, lists, and fields of `subject` (a missing
    field is null). Nothing else parses, so a policy can never run code. Errors are permanent:
    the same policy fails the same way on every attempt."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise PermanentError(f"The policy does not parse: {exc.msg} at column {exc.offset}") from None
    try:
        return bool(_eval(tree.body, subject))
    except TypeError as exc:
        raise PermanentError(f"The policy compares incompatible values: {exc}") from None


def _eval(node: ast.AST, subject: dict):
    if isinstance(node, ast.BoolOp):
        values = (_eval(value, subject) for value in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, subject)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, subject)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            compare = _COMPARISONS.get(type(op))
            if compare is None:
                raise PermanentError(f"The policy uses the operator {type(op).__name__}, which policies do not allow")
            right = _eval(comparator, subject)
            if not compare(left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(item, subject) for item in node.elts]
    if isinstance(node, ast.Name):
        if node.id == "subject":
            return subject
        if node.id in _LITERALS:
            return _LITERALS[node.id]
        raise PermanentError(f"The policy uses the unknown name {node.id!r}: refer to fields as subject.<field>")
    if isinstance(node, ast.Attribute):
        container = _eval(node.value, subject)
        return container.get(node.attr) if isinstance(container, dict) else None
    raise PermanentError(f"The policy uses {type(node).__name__}, which policies do not allow")


@handler("policy-evaluation")
def evaluate(payload: dict, context: WorkContext) -> dict:
    if is_poison(payload, context):
        raise PolicyEngineError(
            f"Evaluation stack overflow at depth {len(payload['policy']) * 8} for request '{payload['request_id']}'"
        )
    if _flaky():
        raise TransientError(f"Attribute store timed out after {_latency_ms()} ms")
    allowed = evaluate_policy(payload["policy"], payload["subject"])
    context.meter.add(records=1)
    return {"request_id": payload["request_id"], "decision": "allow" if allowed else "deny"}
