from django.urls import path

from dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("classes/<slug:slug>/", views.class_detail, name="class-detail"),
    path("schedules/", views.schedule_week, name="schedules"),
    path("cost/", views.cost, name="cost"),
    path("actions/", views.action_list, name="actions"),
    path("actions/<int:action_id>/", views.action_detail, name="action-detail"),
    path("actions/<int:action_id>/progress/", views.action_progress, name="action-progress"),
    path("actions/<int:action_id>/cancel/", views.action_cancel_view, name="action-cancel"),
    path("audit/", views.audit_log, name="audit"),
]
