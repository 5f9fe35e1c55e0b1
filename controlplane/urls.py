from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from controlplane.csp import csp_relaxed
from controlplane.favicon import favicon
from controlplane.health import healthz
from dashboards.login import LoginView
from workloads.api.prometheus import prometheus_metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("metrics", prometheus_metrics, name="prometheus-metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # OpenID Connect sign-in (controlplane/oidc.py); answers 404 unless OIDC_CLIENT_ID is set.
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("api/v1/", include("workloads.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI's stylesheet draws its icons as data: SVG images: allowed on this page only.
    path(
        "api/docs/",
        csp_relaxed(img_src="data:")(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("", include("dashboards.urls")),
]

handler404 = "controlplane.error_views.page_not_found"
handler500 = "controlplane.error_views.server_error"
