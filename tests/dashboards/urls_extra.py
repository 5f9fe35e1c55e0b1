"""A URL configuration for tests: the real one without one screen and with a few pages that fail
on purpose, to show how the layout and the error handling react."""

from django.urls import include, path

from controlplane.urls import handler404, handler500  # noqa: F401  (the real error pages)
from controlplane.urls import urlpatterns as real_urlpatterns
from dashboards import urls as dashboards_urls
from workloads.providers.base import ProviderError


def broken(request):
    raise RuntimeError("secret internals: password=hunter2")


def provider_denied(request):
    raise ProviderError(
        "Permission denied on the worker pool",
        permanent=True,
        code="PERMISSION_DENIED",
        resource="projects/p/locations/l/workerPools/docs",
    )


def provider_unavailable(request):
    raise ProviderError("Cloud Monitoring is unavailable", permanent=False, code="UNAVAILABLE")


dashboards_without_compare = [p for p in dashboards_urls.urlpatterns if getattr(p, "name", None) != "compare"]

urlpatterns = [
    path("boom/", broken),
    path("provider-denied/", provider_denied),
    path("provider-unavailable/", provider_unavailable),
    path("api/provider-denied/", provider_denied),
    *(p for p in real_urlpatterns if getattr(p, "app_name", None) != "dashboards"),
    path("", include((dashboards_without_compare, "dashboards"))),
]
