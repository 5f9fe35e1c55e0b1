from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

from controlplane.roles import Role, has_role


class ControlPlaneAdminSite(admin.AdminSite):
    site_header = "Async workloads control plane"
    site_title = "Control plane admin"

    def has_permission(self, request):
        # Roles, not is_staff, decide who may use the admin: admins only.
        return has_role(request.user, Role.ADMIN)

    def login(self, request, extra_context=None):
        # One login page for the whole site, so its failed-login limits cover the admin too.
        # (Imported here: this module is loaded with INSTALLED_APPS, before the auth models.)
        from django.contrib.auth import REDIRECT_FIELD_NAME
        from django.contrib.auth.views import redirect_to_login
        from django.urls import reverse

        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index", current_app=self.name)
        return redirect_to_login(next_url, login_url=reverse("login"))


class ControlPlaneAdminConfig(AdminConfig):
    default_site = "controlplane.admin.ControlPlaneAdminSite"
