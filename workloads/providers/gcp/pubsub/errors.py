"""How the Pub/Sub adapter's calls are retried and their failures explained: every call but a
publish goes through `call_with_retry` (workloads/providers/gcp/errors.py) with the role that a
permission error should name; creating what another process created at the same moment is not a
failure; a publish's failure (a Google error, or anything else from the client's futures) becomes
a ProviderError naming the topic."""

from __future__ import annotations

from google.api_core import exceptions as gexc

from workloads.providers.base import ProviderError
from workloads.providers.gcp.errors import (
    PUBSUB_ADMIN_ROLE,
    PUBSUB_PUBLISHER_ROLE,
    Backoff,
    call_with_retry,
    to_provider_error,
)


class CallsMixin:
    _backoff: Backoff  # set by PubSubQueue.__init__

    def _create(self, fn, *, what: str, resource: str, hint: str = "") -> bool:
        try:
            self._admin(fn, what=what, resource=resource, hint=hint)
            return True
        except ProviderError as exc:
            if exc.code == "ALREADY_EXISTS":  # another process won the race: fine
                return False
            raise

    def _admin(self, fn, *, what: str, resource: str, role: str = PUBSUB_ADMIN_ROLE, hint: str = "", deadline=None):
        return call_with_retry(
            fn, what=what, resource=resource, role=role, backoff=self._backoff, hint=hint, deadline=deadline
        )


def publish_error(failure: BaseException, *, topic: str) -> ProviderError:
    """The ProviderError to raise for a publish that failed with `failure` (not a ProviderError)."""
    if isinstance(failure, gexc.GoogleAPIError):
        return to_provider_error(failure, what="publish to", resource=topic, role=PUBSUB_PUBLISHER_ROLE)
    return ProviderError(f"Publishing to {topic} did not complete: {failure}", permanent=False, code="", resource=topic)
