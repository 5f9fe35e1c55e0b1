"""Audit diffs as people read them: one line per changed leaf value.

An AuditEvent stores `changes` as {field: [before, after]}, where a value may be a nested
structure (a class's SLOs and schedules are lists of dicts). Printing those lists whole hides the
one number that changed, so nested values are walked down to their leaves, and list items are
matched by their natural key (an SLO's kind, a schedule's name) rather than by position:
`slos[queue_age].threshold_seconds: 120 → 90`.
"""

import json
from dataclasses import dataclass

_ABSENT = object()
_NATURAL_KEYS = ("kind", "name", "key", "id")


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: str
    after: str

    @property
    def kind(self) -> str:
        if self.before == ABSENT_TEXT:
            return "added"
        if self.after == ABSENT_TEXT:
            return "removed"
        return "changed"


ABSENT_TEXT = "—"


def _text(value) -> str:
    if value is _ABSENT:
        return ABSENT_TEXT
    if value is None:
        return "none"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _natural_key(items: list) -> str | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    return next((key for key in _NATURAL_KEYS if all(key in item for item in items)), None)


def _walk(path: str, before, after, out: list[FieldChange]) -> None:
    if before == after:
        return
    dicts = [v for v in (before, after) if v is not _ABSENT and v is not None]
    if dicts and all(isinstance(v, dict) for v in dicts):
        old = before if isinstance(before, dict) else {}
        new = after if isinstance(after, dict) else {}
        for key in sorted(set(old) | set(new)):
            _walk(f"{path}.{key}", old.get(key, _ABSENT), new.get(key, _ABSENT), out)
        return
    if dicts and all(isinstance(v, list) for v in dicts):
        old = before if isinstance(before, list) else []
        new = after if isinstance(after, list) else []
        key = _natural_key(old + new)
        if key is not None:
            old_items = {str(item[key]): item for item in old}
            new_items = {str(item[key]): item for item in new}
            for name in sorted(set(old_items) | set(new_items)):
                _walk(f"{path}[{name}]", old_items.get(name, _ABSENT), new_items.get(name, _ABSENT), out)
            return
    out.append(FieldChange(path, _text(before), _text(after)))


def readable_changes(changes: dict | None) -> list[FieldChange]:
    """Every changed leaf of an audit event's `changes`, in field order."""
    out: list[FieldChange] = []
    for field, pair in sorted((changes or {}).items()):
        if isinstance(pair, list) and len(pair) == 2:
            before, after = pair
        else:  # not the usual [before, after] pair: show it as the new value
            before, after = _ABSENT, pair
        _walk(field, _ABSENT if before is None else before, _ABSENT if after is None else after, out)
    return out
