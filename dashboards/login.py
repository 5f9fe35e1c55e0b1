"""The login page, with failed-login limits (see `workloads.services.login_limits`)."""

from django.conf import settings
from django.contrib.auth import views as auth_views

from controlplane import request_context
from workloads.services.login_limits import login_attempt_begin, login_attempt_failed, login_attempt_succeeded


def _source_ip() -> str | None:
    # Set by RequestContextMiddleware, honouring TRUST_X_FORWARDED_FOR like the audit log does.
    return request_context.current().source_ip


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs):
        return super().get_context_data(
            local_password_login=settings.LOCAL_PASSWORD_LOGIN,
            oidc_enabled=settings.OIDC_ENABLED,
            oidc_provider_name=settings.OIDC_PROVIDER_NAME,
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not settings.LOCAL_PASSWORD_LOGIN:
            # Turned off: no password is checked (ModelBackend is not even installed then).
            context = self.get_context_data(form=self.get_form_class()(request))
            return self.render_to_response(context, status=403)
        # Counted before the password is checked, so concurrent guesses cannot all pass the limit.
        self.attempt = login_attempt_begin(username=request.POST.get("username", ""), ip=_source_ip())
        if self.attempt.refused:
            return self._locked_out(self.attempt.retry_after)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        retry_after = login_attempt_failed(self.attempt)
        if retry_after is not None:  # this failure reached a limit: say so now, not on the next try
            return self._locked_out(retry_after)
        return super().form_invalid(form)

    def form_valid(self, form):
        login_attempt_succeeded(self.attempt)
        return super().form_valid(form)

    def _locked_out(self, retry_after: int):
        form = self.get_form_class()(self.request)  # empty: the password is not echoed back
        minutes = max(1, round(retry_after / 60))
        context = self.get_context_data(
            form=form,
            locked_out=f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(retry_after)
        return response
