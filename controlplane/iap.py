"""Sign-in behind Identity-Aware Proxy: IAP authenticates the person and adds a signed
`x-goog-iap-jwt-assertion` header to every request; with IAP_AUDIENCE set, this middleware
verifies it (workloads/providers/gcp/iap.py) and signs the person in by e-mail address, with the
role the rules give (workloads/services/identity.py).

A request carrying an API token of ours is left to the token (automation behind IAP still acts as
its token's user). A request without the header is left alone: set Cloud Run's ingress so that
only IAP's load balancer reaches the service (docs/operations.md, "Single sign-on").
"""

import time

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, login
from django.contrib.auth.backends import ModelBackend
from django.http import HttpResponse

from workloads.models import SsoProvider
from workloads.services.identity import SsoSignInRefused, VerifiedIdentity, sso_sign_in, sso_sign_in_failed

HEADER = "x-goog-iap-jwt-assertion"
BACKEND = "controlplane.iap.IapBackend"
# Within a session the role is taken from the rules again this often, so a person's changed
# groups or a changed rule apply within the hour, not at the session's end (two weeks).
ROLE_REFRESH_SECONDS = 3600
_SIGNED_IN_AT = "iap_signed_in_at"


class IapBackend(ModelBackend):
    """Keeps IAP sessions valid (get_user); never checks a password."""

    def authenticate(self, request, **kwargs):
        return None


def _refused(status: int, reason: str) -> HttpResponse:
    return HttpResponse(f"Identity-Aware Proxy sign-in refused: {reason}\n", status=status, content_type="text/plain")


class IapMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        assertion = request.headers.get(HEADER)
        if settings.IAP_AUDIENCE and assertion and not _carries_api_token(request):
            refused = self._sign_in(request, assertion)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _sign_in(self, request, assertion: str) -> HttpResponse | None:
        from workloads.providers.gcp.iap import IapAssertionInvalid, iap_assertion_verify

        try:
            claims = iap_assertion_verify(assertion, audience=settings.IAP_AUDIENCE, certs_url=settings.IAP_CERTS_URL)
        except IapAssertionInvalid as exc:
            sso_sign_in_failed(provider=SsoProvider.IAP, reason=f"invalid IAP assertion: {exc}")
            return _refused(401, f"the {HEADER} header is not valid ({exc}).")
        # IAP prefixes identities with their kind: "accounts.google.com:alice@example.com".
        email = claims["email"].rpartition(":")[2]
        user = request.user
        if (
            user.is_authenticated
            and user.email.lower() == email.lower()
            and request.session.get(BACKEND_SESSION_KEY) == BACKEND
            and time.time() - request.session.get(_SIGNED_IN_AT, 0) < ROLE_REFRESH_SECONDS
        ):
            return None  # signed in by IAP earlier in this session
        try:
            user = sso_sign_in(
                identity=VerifiedIdentity(provider=SsoProvider.IAP, subject=claims["sub"], email=email),
                rules=settings.SSO_ROLE_RULES,
            )
        except SsoSignInRefused as exc:
            return _refused(403, str(exc))
        login(request, user, backend=BACKEND)
        request.session[_SIGNED_IN_AT] = time.time()
        return None


def _carries_api_token(request) -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer cpt_")
