from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from controlplane import request_context
from workloads.services.ingestion_lookups import token_authenticate
from workloads.services.tokens import api_token_authenticate


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer cpt_<id>_<secret>`; the request acts as the token's user."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from None
        view = (request.parser_context or {}).get("view")
        token = self._cached_token(raw) if getattr(view, "caches_lookups", False) else api_token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        context = request_context.current()
        context.token_id = token.pk
        return token.user, token

    @staticmethod
    def _cached_token(raw: str):
        """Through the process's token cache (workloads/services/ingestion_lookups.py), for views
        that say `caches_lookups` (the ingestion endpoint): they re-check the token's stamp
        (`cache_stamp`) before they claim anything, and before each refusal."""
        found = token_authenticate(raw)
        if found is None:
            return None
        token, stamp = found
        token.cache_stamp = stamp  # (token id, stamp)
        return token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "workloads.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token issued by an admin."}
