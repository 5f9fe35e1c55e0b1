from django.apps import AppConfig


class LocalCloudConfig(AppConfig):
    """The embedded cloud as an app of its own: the local provider's tables live here, apart from
    the product's (workloads.models), and only the provider reads or writes them."""

    name = "workloads.providers.local"
    label = "localcloud"
    verbose_name = "Embedded cloud (local provider)"
    default_auto_field = "django.db.models.BigAutoField"
