import pytest

from controlplane.role_rules import parse_role_rules
from tests.identity.provider import OidcProvider

RULES = "group:platform-admins=admin, group:oncall=operator, domain:example.com=viewer"
SSO_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "controlplane.oidc.OidcBackend"]


@pytest.fixture
def oidc_provider():
    provider = OidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def oidc_settings(settings, oidc_provider):
    """The control plane signs in through the in-process provider, with RULES."""
    for name, value in oidc_provider.settings().items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = SSO_BACKENDS
    settings.SSO_ROLE_RULES = parse_role_rules(RULES)
    return settings
