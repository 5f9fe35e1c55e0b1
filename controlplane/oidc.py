"""Sign-in through any OpenID Connect provider (Google Workspace, Okta, Entra ID, Keycloak) with
mozilla-django-oidc: authorization code flow with PKCE, nonce and state.

What we add to the library: the ID token's audience and issuer are checked too (the library checks
the signature and expiry only), people are found and given roles by `workloads.services.identity`,
and a failed sign-in lands on the login page saying why instead of on a bare 400.
"""

import logging

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from workloads.models import SsoProvider
from workloads.services.identity import SsoSignInRefused, VerifiedIdentity, sso_sign_in, sso_sign_in_failed

logger = logging.getLogger(__name__)

# Clocks of the provider and of this server may differ a little.
CLOCK_SKEW_SECONDS = 60


class OidcBackend(OIDCAuthenticationBackend):
    def _verify_jws(self, payload, key):
        alg = jwt.get_unverified_header(payload).get("alg")
        if alg != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"the ID token is signed with {alg!r}, expected {self.OIDC_RP_SIGN_ALGO}")
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[alg],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_OP_ISSUER,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"the ID token was refused: {exc}") from None

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") not in (None, payload["sub"]):
            # OpenID Connect Core 5.3.2: a UserInfo answer about someone else must not be used.
            raise SuspiciousOperation("the UserInfo answer is about another subject than the ID token")
        claims = {**payload, **userinfo}  # providers put groups in one or the other
        groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
        if isinstance(groups, str):
            groups = [groups]
        identity = VerifiedIdentity(
            provider=SsoProvider.OIDC,
            subject=str(payload["sub"]),
            email=str(claims.get("email") or ""),
            email_verified=claims.get("email_verified", True) not in (False, "false"),
            groups=tuple(str(group) for group in groups),
        )
        return sso_sign_in(identity=identity, rules=settings.SSO_ROLE_RULES)

    def authenticate(self, request, **kwargs):
        if not settings.OIDC_ENABLED:
            return None
        return super().authenticate(request, **kwargs)


class OidcAuthenticateView(OIDCAuthenticationRequestView):
    """Starts the sign-in: a redirect to the provider with state, nonce and the PKCE challenge."""

    def __init__(self, *args, **kwargs):
        if not settings.OIDC_ENABLED:  # the library reads its settings here and would fail
            return
        super().__init__(*args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        return super().dispatch(request, *args, **kwargs)


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with a code; any failure goes back to the login
    page with the reason, and is audited."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except SsoSignInRefused as exc:  # already audited
            return self._back_to_login(str(exc))
        except SuspiciousOperation as exc:
            reason = f"The sign-in could not be verified: {exc}."
        except requests.RequestException as exc:
            logger.warning("OIDC provider unreachable or refused the code: %s", exc)
            reason = "The identity provider could not be reached or refused the sign-in; try again."
        sso_sign_in_failed(provider=SsoProvider.OIDC, reason=reason)
        return self._back_to_login(reason)

    def login_failure(self):
        error = self.request.GET.get("error_description") or self.request.GET.get("error")
        reason = (
            f"The identity provider did not sign you in ({error})."
            if error
            else "Single sign-on did not complete; try again."
        )
        sso_sign_in_failed(provider=SsoProvider.OIDC, reason=reason)
        return self._back_to_login(reason)

    def _back_to_login(self, reason: str):
        messages.error(self.request, reason)
        return HttpResponseRedirect(reverse("login"))
