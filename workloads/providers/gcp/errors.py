"""One retry-and-explain policy for every Google call the adapters make.

The client libraries' own retries are switched off at each call site (`retry=None`): their defaults
differ per method (Monitoring retries UNAVAILABLE for 90 s, Cloud Run not at all), and two nested
retry layers multiply waits. Here transient codes are retried with full-jitter exponential backoff
up to a deadline; codes that will fail again until someone acts become a `ProviderError` with
`permanent=True` and a message that says what to fix, e.g. which IAM role to grant on which
resource.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.api_core import exceptions as gexc

from workloads.providers.base import ProviderError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Roles named in permission errors: the narrowest predefined role that covers the call.
PUBSUB_ADMIN_ROLE = "roles/pubsub.editor"
PUBSUB_PUBLISHER_ROLE = "roles/pubsub.publisher"
PUBSUB_SUBSCRIBER_ROLE = "roles/pubsub.subscriber"
PUBSUB_VIEWER_ROLE = "roles/pubsub.viewer"  # pubsub.topics.listSubscriptions
RUN_ROLE = "roles/run.developer"
SERVICE_ACCOUNT_USER_ROLE = "roles/iam.serviceAccountUser"  # iam.serviceAccounts.actAs
MONITORING_READ_ROLE = "roles/monitoring.viewer"
MONITORING_WRITE_ROLE = "roles/monitoring.metricWriter"

# Without these grants Pub/Sub accepts the dead-letter policy but never forwards a message.
DEAD_LETTER_IAM_HINT = (
    "Dead-letter forwarding also needs the Pub/Sub service agent "
    "service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com to have roles/pubsub.publisher on the "
    "dead-letter topic and roles/pubsub.subscriber on the source subscription."
)

TRANSIENT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: sleep uniform(0, min(maximum, initial * 2**attempt)) until
    `deadline` seconds have passed since the first try."""

    initial: float = 0.5
    maximum: float = 10.0
    deadline: float = 60.0


DEFAULT_BACKOFF = Backoff()


def status_code(exc: BaseException) -> str:
    """The gRPC status name of a google.api_core error ("UNAVAILABLE"), or "" when it has none."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        return status_code(exc.cause)
    code = getattr(exc, "grpc_status_code", None)
    if code is not None:
        return code.name
    # REST-only errors carry just an HTTP status; map the ones the adapters can meet.
    return {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        409: "ABORTED",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }.get(getattr(exc, "code", None), "")


def _detail(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message.strip() or exc.__class__.__name__


def _service_account(detail: str) -> str:
    match = re.search(r"[\w.-]+@[\w.-]+\.iam\.gserviceaccount\.com", detail)
    return match.group(0) if match else ""


def to_provider_error(exc: BaseException, *, what: str, resource: str, role: str, hint: str = "") -> ProviderError:
    """Translate a Google error into a ProviderError whose message tells the operator what to do."""
    code = status_code(exc)
    detail = _detail(exc)
    extra = f" {hint}" if hint else ""
    if code == "PERMISSION_DENIED" and "iam.serviceaccounts.actas" in detail.lower():
        # Cloud Run checks on every change that the caller may act as the workload's service
        # account: that is a grant on the service account, not another role on the resource.
        account = _service_account(detail) or "the service account the workload runs as"
        message = (
            f"Permission denied: the control plane may not {what} {resource} because it may not act as "
            f"{account}. Grant its service account {SERVICE_ACCOUNT_USER_ROLE} on {account}.{extra} "
            f"(Google said: {detail})"
        )
    elif code == "PERMISSION_DENIED":
        message = (
            f"Permission denied: the control plane may not {what} {resource}. Grant its service account "
            f"{role} on {resource}.{extra} (Google said: {detail})"
        )
    elif code == "NOT_FOUND":
        message = (
            f"Not found: could not {what} {resource} because it (or something it refers to) does not exist. "
            f"Check the name in the workload class settings, or create the resources first.{extra} "
            f"(Google said: {detail})"
        )
    elif code in ("INVALID_ARGUMENT", "OUT_OF_RANGE", "FAILED_PRECONDITION"):
        message = (
            f"Google rejected the request to {what} {resource}: {detail}. Fix the workload class settings "
            f"that feed this request.{extra}"
        )
    elif code == "ALREADY_EXISTS":
        message = f"Could not {what} {resource}: it already exists. (Google said: {detail})"
    elif code == "UNAUTHENTICATED":
        message = (
            f"No valid Google credentials to {what} {resource}: give the process Application Default "
            f"Credentials (the runtime service account, or GOOGLE_APPLICATION_CREDENTIALS). (Google said: {detail})"
        )
    elif code in TRANSIENT_CODES:
        message = f"Google is temporarily failing to {what} {resource} ({code}); try again later. ({detail})"
    else:
        message = f"Could not {what} {resource} ({code or exc.__class__.__name__}): {detail}"
    permanent = code not in TRANSIENT_CODES and code not in ("", "INTERNAL", "UNKNOWN", "CANCELLED")
    return ProviderError(message, permanent=permanent, code=code, resource=resource)


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    resource: str,
    role: str,
    deadline: float | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    hint: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` until it succeeds, retrying transient Google errors with jittered exponential
    backoff for at most `deadline` seconds (default: the backoff's). Anything else, and a transient
    error that outlasts the deadline, is raised as a ProviderError.

    `what` is a verb phrase ("update the worker pool") and `role` the IAM role that allows it on
    `resource`; both end up in the operator-facing message."""
    limit = backoff.deadline if deadline is None else deadline
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except gexc.GoogleAPIError as exc:
            code = status_code(exc)
            if code not in TRANSIENT_CODES:
                raise to_provider_error(exc, what=what, resource=resource, role=role, hint=hint) from exc
            delay = random.uniform(0, min(backoff.maximum, backoff.initial * 2**attempt))
            elapsed = time.monotonic() - started
            attempt += 1
            if elapsed + delay > limit:
                raise ProviderError(
                    f"Google kept failing to {what} {resource} ({code}) for {elapsed:.1f} s over {attempt} "
                    f"attempts; it may succeed later. ({_detail(exc)})",
                    permanent=False,
                    code=code,
                    resource=resource,
                ) from exc
            logger.info("%s %s failed with %s (attempt %d); retrying in %.2f s", what, resource, code, attempt, delay)
            sleep(delay)
