"""DRF throttles backed by `controlplane.ratelimit` (fixed-window counters in the cache)."""

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from controlplane import ratelimit
from workloads.models import ApiToken


class IngestRateThrottle(BaseThrottle):
    """INGEST_RATE_LIMIT_REQUESTS per INGEST_RATE_LIMIT_WINDOW_SECONDS for each token (producers)
    or, for a browser session, each user. Over it: 429 with Retry-After (DRF's Throttled)."""

    scope = "ingest"

    def allow_request(self, request, view) -> bool:
        limit = ratelimit.Limit(settings.INGEST_RATE_LIMIT_REQUESTS, settings.INGEST_RATE_LIMIT_WINDOW_SECONDS)
        if isinstance(request.auth, ApiToken):
            identity = f"token:{request.auth.pk}"
        else:
            identity = f"user:{request.user.pk}"
        verdict = ratelimit.hit(self.scope, identity, limit)
        self.retry_after = verdict.retry_after
        return verdict.allowed

    def wait(self) -> float:
        return self.retry_after
