from django.urls import path

from dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("classes/<slug:slug>/", views.class_detail, name="class-detail"),
]
