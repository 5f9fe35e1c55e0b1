import json
import logging
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from controlplane import request_context
from workloads.models import AuditEvent, AuditResult

logger = logging.getLogger(__name__)

_NOT_AUDITED_FIELDS = {"created_at", "updated_at", "last_used_at", "secret_hash"}


def _plain(value):
    """JSON-safe form of a field value (Decimals, times and UUIDs become strings)."""
    if isinstance(value, Decimal):
        # 0.000018 and 0.000018000000 (as stored) are the same price: no phantom diffs.
        return format(value.normalize(), "f")
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(instance: models.Model, *, exclude: set[str] = frozenset()) -> dict:
    """The instance's concrete field values, JSON-safe, keyed by field name (FKs by attname)."""
    data = {}
    for field in instance._meta.concrete_fields:
        if field.name in _NOT_AUDITED_FIELDS or field.name in exclude or field.primary_key:
            continue
        key = field.name if not field.is_relation else field.attname
        data[key] = _plain(getattr(instance, field.attname))
    return data


def diff(before: dict, after: dict) -> dict:
    """{field: [before, after]} for every field whose value changed (None for absent)."""
    changes = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            changes[key] = [old, new]
    return changes


def _actor_label(actor, token_name: str | None) -> str:
    if actor is None:
        return "system"
    label = actor.get_username()
    return f"{label} (token {token_name})" if token_name else label


def audit_event_record(
    *,
    actor,
    action: str,
    target: models.Model | None = None,
    target_repr: str | None = None,
    changes: dict | None = None,
    result: str = AuditResult.SUCCESS,
    workload_class_slug: str = "",
    extra: dict | None = None,
) -> AuditEvent:
    """Write one audit row. Call inside the transaction of the change it describes; the request
    context (source address, request id, token, channel) is picked up from the current request."""
    context = request_context.current()
    token_name = None
    if context.token_id is not None:
        from workloads.models import ApiToken

        token_name = ApiToken.objects.filter(pk=context.token_id).values_list("name", flat=True).first()
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_label=_actor_label(actor, token_name)[:150],
        token_id=context.token_id,
        via=context.via,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None and target.pk is not None else "",
        target_repr=(target_repr if target_repr is not None else str(target) if target is not None else "")[:255],
        workload_class_slug=workload_class_slug,
        changes=_plain(changes or {}),
        result=result,
        source_ip=context.source_ip,
        request_id=context.request_id,
        extra=_plain(extra or {}),
    )


MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def audit_refused_request(
    *, request, action: str, result: str, reason: str, code: str = "", workload_class_slug: str = ""
) -> None:
    """Record that a signed-in caller's change was refused: denied by its role (`request.denied`)
    or refused by a guard of the service (`request.refused`: nothing to replay, an empty filter,
    a conflict). Reads are not recorded. Never fails the request it describes."""
    user = getattr(request, "user", None)
    if request.method not in MUTATING_METHODS or not user or not user.is_authenticated:
        return
    extra = {"reason": reason}
    if code:
        extra["code"] = code
    try:
        audit_event_record(
            actor=user,
            action=action,
            target_repr=f"{request.method} {request.path}"[:255],
            result=result,
            workload_class_slug=workload_class_slug,
            extra=extra,
        )
    except Exception:  # never turn a refusal into a 500 because the audit write failed
        logger.exception("could not record a refused request")
