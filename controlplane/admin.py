from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

from controlplane.roles import Role, has_role


class ControlPlaneAdminSite(admin.AdminSite):
    site_header = "Async workloads control plane"
    site_title = "Control plane admin"

    def has_permission(self, request):
        # Roles, not is_staff, decide who may use the admin: admins only.
        return has_role(request.user, Role.ADMIN)


class ControlPlaneAdminConfig(AdminConfig):
    default_site = "controlplane.admin.ControlPlaneAdminSite"
