"""POST /api/v1/classes/<slug>/events/: the validating ingestion endpoint."""

import re
import unicodedata
import uuid

from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.choices import ChoiceField
from workloads.api.parsers import PayloadJSONParser
from workloads.api.schema import ErrorSerializer
from workloads.api.throttles import IngestRateThrottle
from workloads.models import ApiToken
from workloads.providers.base import ProviderError
from workloads.services.ingestion import MAX_BATCH_EVENTS, MAX_BODY_BYTES, MAX_KEY_LENGTH, Status, events_ingest
from workloads.services.ingestion_lookups import (
    Guard,
    StaleLookup,
    forget,
    stale_guards,
    workload_class_for_ingestion,
)
from workloads.services.provisioning import provisioning_in_progress

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(/.*)?$")
PAUSED_RETRY_AFTER_SECONDS = 300
# A class's topic is missing: being provisioned (seconds) or waiting for someone to provision it.
PROVISIONING_RETRY_AFTER_SECONDS = 30


def _resources_not_ready(workload_class, exc: ProviderError) -> Response:
    """503, not 502: nothing was queued (the keys were given back) and the producer's retry will
    succeed once the class's resources exist."""
    action = provisioning_in_progress(workload_class)
    if action is not None:
        detail = (
            f"The cloud resources of {workload_class.slug} are not ready yet: they are being provisioned "
            f"(action {action.pk}, /api/v1/actions/{action.pk}/). Retry after {PROVISIONING_RETRY_AFTER_SECONDS} s."
        )
    else:
        detail = (
            f"The cloud resources of {workload_class.slug} are not ready: {exc.resource or 'its topic'} does not "
            f"exist. An admin provisions them (POST /api/v1/classes/{workload_class.slug}/provision/ or "
            "manage.py provision); retry after that."
        )
    body = {"type": "resources_not_ready", "detail": detail, "provisioning_action": action.pk if action else None}
    response = Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(PROVISIONING_RETRY_AFTER_SECONDS)
    return response


EVENT_STATUSES = [Status.ACCEPTED, Status.DUPLICATE, Status.REJECTED, Status.CONFLICT]


def _trace_id(request) -> str:
    match = _TRACEPARENT.match(request.headers.get("traceparent", "").strip())
    if match:
        return match.group(1)
    match = _CLOUD_TRACE.match(request.headers.get("X-Cloud-Trace-Context", "").strip())
    if match:
        return match.group(1).lower()
    return uuid.uuid4().hex


def _idempotency_key_header(request) -> str | None:
    """The Idempotency-Key header as text, NFC-normalized like keys built from payloads. WSGI hands
    header bytes over as latin-1 (PEP 3333): re-read them as UTF-8 (UnicodeDecodeError when not)."""
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raw = value.encode("utf-8")  # already text (an ASGI server or a test client decoded it)
    return unicodedata.normalize("NFC", raw.decode("utf-8"))


class _FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField()


class EventReceiptSerializer(serializers.Serializer):
    """The answer for a single event (a JSON object was sent)."""

    type = serializers.CharField(required=False, help_text="On 400 and 422: validation_error, idempotency_conflict.")
    status = ChoiceField(choices=EVENT_STATUSES)
    idempotency_key = serializers.CharField(required=False)
    duplicate = serializers.BooleanField(required=False)
    message_id = serializers.CharField(required=False)
    ordering_key = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)
    errors = _FieldErrorSerializer(many=True, required=False)


class EventResultSerializer(EventReceiptSerializer):
    """One event of a batch, by its position in the array."""

    index = serializers.IntegerField()


class BatchReceiptSerializer(serializers.Serializer):
    """The answer for a batch (a JSON array was sent): one result per event."""

    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    results = EventResultSerializer(many=True)


class IngestRejectionSerializer(serializers.Serializer):
    """A request refused as a whole: unparsable JSON, a bad Idempotency-Key header, an empty or
    oversized batch, or a single event that does not match the class's schema."""

    type = serializers.CharField()
    detail = serializers.CharField()
    status = serializers.CharField(required=False)
    idempotency_key = serializers.CharField(required=False)
    errors = _FieldErrorSerializer(many=True, required=False)


def _single_or_batch(name: str, single) -> PolymorphicProxySerializer:
    # A JSON object gets a single answer, a JSON array a batch receipt.
    return PolymorphicProxySerializer(
        component_name=name, serializers=[single, BatchReceiptSerializer], resource_type_field_name=None
    )


_DESCRIPTION = f"""
Send one event (a JSON object) or a batch (a JSON array of up to {MAX_BATCH_EVENTS} objects; at most
{MAX_BODY_BYTES // (1024 * 1024)} MB). Each event is normalized (schema defaults, trimmed strings, enum
spelling, RFC 3339 UTC date-times) and validated against the class's payload schema; valid events are
published to the class topic with an idempotency key built from the class's key template (or, for a
single event, the `Idempotency-Key` header: UTF-8, at most {MAX_KEY_LENGTH} characters; keys are
Unicode-normalized to NFC, so composed and decomposed spellings of one id are one key).

Within the class's dedup TTL (`dedup_ttl_seconds` on the class), the same key with the same payload
returns the original receipt (`200`, `duplicate: true`, same `message_id`); the same key with a
different payload is `422`. Single event: `202` accepted, `200` duplicate, `400` invalid (per-field
errors), `422` conflict. Batch: one result per event; `202` when any event was accepted, `200`
when all were duplicates, `422` when none was accepted and one conflicted, `400` when all were invalid.

Tokens need the scope `ingest:<slug>`, `ingest:*` or `*`; browser sessions need the operator role.
A class paused by incident mode and configured to shed load answers `503` with `Retry-After`.
Each token may send `INGEST_RATE_LIMIT_REQUESTS` requests per `INGEST_RATE_LIMIT_WINDOW_SECONDS`
(60000 per minute by default); past that, `429` with `Retry-After`.
"""


class EventIngestView(APIView):
    # The token and the class come from the process's cache, re-checked before anything is claimed
    # and before each refusal (workloads/services/ingestion_lookups.py).
    caches_lookups = True
    token_scope_kind = "ingest"
    throttle_classes = [IngestRateThrottle]
    # Each event is checked on its own (nesting, numbers, text) and refused with its path.
    parser_classes = [PayloadJSONParser]

    def required_role(self, request) -> Role:
        # Producers authenticate with ingest-scoped tokens of any role; people need operator.
        return Role.VIEWER if isinstance(request.auth, ApiToken) else Role.OPERATOR

    def initial(self, request, *args, **kwargs):
        # A refusal (401, 403, 429) of a token read from the process's cache stands only if that
        # token is still what it was: a role or scope granted since is seen at once.
        try:
            super().initial(request, *args, **kwargs)
        except APIException:
            if not self._token_went_stale(request):
                raise
            self._authenticate_again(request)
            super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="classes_events_create",
        summary="Ingest events for a workload class",
        description=_DESCRIPTION,
        request={"application/json": OpenApiTypes.ANY},
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("traceparent", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            202: OpenApiResponse(
                _single_or_batch("IngestAccepted", EventReceiptSerializer),
                description="Accepted (single), or a batch with at least one accepted event",
            ),
            200: OpenApiResponse(
                _single_or_batch("IngestDuplicate", EventReceiptSerializer),
                description="Duplicate: the original receipt (single), or a batch with nothing new",
            ),
            400: OpenApiResponse(
                _single_or_batch("IngestRejected", IngestRejectionSerializer), description="Invalid event(s)"
            ),
            413: OpenApiResponse(ErrorSerializer, description=f"The body is over {MAX_BODY_BYTES // 1048576} MB"),
            422: OpenApiResponse(
                _single_or_batch("IngestConflict", EventReceiptSerializer),
                description="Same key, different payload",
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description="Class paused and shedding load, its cloud resources not provisioned yet, or the "
                "database unreachable; see Retry-After",
            ),
        },
        examples=[
            OpenApiExample(
                "One document",
                value={"tenant_id": "acme", "document_id": "doc-1", "revision": 3, "content_type": "text/plain"},
                request_only=True,
            )
        ],
    )
    def post(self, request, slug: str):
        # The token and the class come from the process's cache (workloads/services/ingestion_lookups.py),
        # re-checked by the request's group before anything is claimed, or here before a refusal.
        # When either changed, the request starts over with both read afresh.
        try:
            return self._ingest(request, slug, guarded=True)
        except StaleLookup:
            forget(slug=slug)
            if getattr(request.auth, "cache_stamp", None) is not None:
                self._authenticate_again(request)
            self.check_permissions(request)
            return self._ingest(request, slug, guarded=False)

    @staticmethod
    def _token_went_stale(request) -> bool:
        stamp = getattr(request.auth, "cache_stamp", None)
        return stamp is not None and bool(stale_guards([Guard(token=stamp)]))

    @staticmethod
    def _authenticate_again(request) -> None:
        """Authenticate anew, the token read from the database (a revoked one is a 401 now)."""
        forget(key_id=request.auth.key_id)
        del request._user, request._auth  # DRF authenticates again on the next access
        request.user  # noqa: B018 - raises AuthenticationFailed for a token no longer valid

    def _ingest(self, request, slug: str, *, guarded: bool):
        found = workload_class_for_ingestion(slug)
        token_stamp = getattr(request.auth, "cache_stamp", None) if guarded else None
        guard = Guard(token=token_stamp, classes=found[2] if found else ()) if guarded else None

        def refuse(response):
            """A refusal is answered only if what it rests on still holds."""
            if guard is not None and stale_guards([guard]):
                raise StaleLookup
            return response

        if found is None:
            refuse(None)
            raise Http404
        workload_class, paused, _stamps = found
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return refuse(
                Response(
                    {"type": "payload_too_large", "detail": f"The body is over {MAX_BODY_BYTES // 1048576} MB."},
                    status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                )
            )
        if workload_class.shed_load_when_paused and paused:
            response = Response(
                {
                    "type": "class_paused",
                    "detail": f"{slug} is paused and sheds load; retry later.",
                },
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
            response["Retry-After"] = str(PAUSED_RETRY_AFTER_SECONDS)
            return refuse(response)
        try:
            body = request.data
        except ParseError as exc:
            return refuse(
                Response({"type": "parse_error", "detail": str(exc.detail)}, status=status.HTTP_400_BAD_REQUEST)
            )
        try:
            header_key = _idempotency_key_header(request)
        except UnicodeDecodeError:
            return refuse(
                Response(
                    {
                        "type": "validation_error",
                        "detail": "The Idempotency-Key header must be UTF-8 text.",
                        "status": Status.REJECTED,
                        "errors": [{"field": "Idempotency-Key", "message": "Not UTF-8.", "code": "encoding"}],
                    },
                    status=status.HTTP_400_BAD_REQUEST,
                )
            )
        try:
            if isinstance(body, list):
                response = self._batch(request, workload_class, body, header_key, guard)
            else:
                response = self._single(request, workload_class, body, header_key, guard)
        except ProviderError as exc:
            if exc.code != "NOT_FOUND":
                raise
            return _resources_not_ready(workload_class, exc)
        # Nothing was claimed (every event refused before its group): the group re-checked nothing.
        return response if response.status_code in (200, 202) else refuse(response)

    def _single(self, request, workload_class, event, header_key, guard):
        if header_key is not None and not 1 <= len(header_key) <= MAX_KEY_LENGTH:
            return Response(
                {
                    "type": "validation_error",
                    "detail": f"The Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} characters.",
                    "status": Status.REJECTED,
                    "errors": [{"field": "Idempotency-Key", "message": "Invalid length.", "code": "maxLength"}],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        [result] = events_ingest(
            workload_class=workload_class,
            events=[event],
            idempotency_key=header_key,
            trace_id=_trace_id(request),
            now=timezone.now(),
            guard=guard,
        )
        body = result.as_dict()
        body.pop("index")
        if result.status == Status.REJECTED:
            return Response(
                {"type": "validation_error", "detail": "The event does not match the class's schema.", **body},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if result.status == Status.CONFLICT:
            return Response({"type": "idempotency_conflict", **body}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        code = status.HTTP_200_OK if result.status == Status.DUPLICATE else status.HTTP_202_ACCEPTED
        return Response(body, status=code)

    def _batch(self, request, workload_class, events, header_key, guard):
        if header_key is not None:
            return Response(
                {
                    "type": "validation_error",
                    "detail": "The Idempotency-Key header applies to a single event; a batch uses the class's "
                    "key template for each event.",
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        if not events or len(events) > MAX_BATCH_EVENTS:
            return Response(
                {"type": "validation_error", "detail": f"A batch holds 1 to {MAX_BATCH_EVENTS} events."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        results = events_ingest(
            workload_class=workload_class, events=events, trace_id=_trace_id(request), now=timezone.now(), guard=guard
        )
        counts = {
            kind: sum(1 for r in results if r.status == kind)
            for kind in (Status.ACCEPTED, Status.DUPLICATE, Status.REJECTED, Status.CONFLICT)
        }
        body = {
            "accepted": counts[Status.ACCEPTED],
            "duplicates": counts[Status.DUPLICATE],
            "rejected": counts[Status.REJECTED],
            "conflicts": counts[Status.CONFLICT],
            "results": [r.as_dict() for r in results],
        }
        if counts[Status.ACCEPTED]:
            code = status.HTTP_202_ACCEPTED
        elif counts[Status.DUPLICATE] == len(results):
            code = status.HTTP_200_OK
        elif counts[Status.CONFLICT]:
            code = status.HTTP_422_UNPROCESSABLE_ENTITY
        elif counts[Status.DUPLICATE]:
            code = status.HTTP_200_OK
        else:
            code = status.HTTP_400_BAD_REQUEST
        return Response(body, status=code)
