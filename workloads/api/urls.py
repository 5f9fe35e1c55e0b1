from django.urls import path
from rest_framework.routers import DefaultRouter

from workloads.api import views
from workloads.api.actions import ActionViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("classes", views.WorkloadClassViewSet, basename="workload-class")
router.register("cost-rates", views.CostRatesViewSet, basename="cost-rates")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("tokens", views.ApiTokenViewSet, basename="api-token")
router.register("actions", ActionViewSet, basename="action")

app_name = "api"
urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    *router.urls,
]
