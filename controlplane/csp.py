"""Content-Security-Policy on every HTML response.

Scripts come from our own origin only: no inline script, no eval (htmx runs with allowEval off,
set in base.html's htmx-config meta tag). Styles too: the templates carry no inline styles, htmx's
own indicator style is off (includeIndicatorStyles) and app.css has it instead, and charts set
styles through the CSSOM (element.style), which CSP does not restrict. So an injected <style> or
style attribute, like an injected script, does nothing.

A page that cannot live with the policy relaxes it for itself only, with `csp_relaxed` (and says
why there); every other response gets `CONTENT_SECURITY_POLICY` as it is.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings

CSP_HEADER = "Content-Security-Policy"


def _policy_with(additions: dict[str, str]) -> str:
    directives = {}
    for part in settings.CONTENT_SECURITY_POLICY.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            directives[name] = value
    for name, extra in additions.items():
        directives[name] = f"{directives.get(name, '')} {extra}".strip()
    return "; ".join(f"{name} {value}".strip() for name, value in directives.items())


def csp_relaxed(**additions: str):
    """Decorate a view whose page needs more than the policy allows: `csp_relaxed(img_src="data:")`
    adds `data:` to that directive for this view's responses only."""
    named = {name.replace("_", "-"): value for name, value in additions.items()}

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            if response.get("Content-Type", "").startswith("text/html"):
                response[CSP_HEADER] = _policy_with(named)
            return response

        return wrapped

    return decorate


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY and CSP_HEADER not in response:
            if response.get("Content-Type", "").startswith("text/html"):
                response[CSP_HEADER] = settings.CONTENT_SECURITY_POLICY
        return response
