from django.apps import AppConfig


class DemoConfig(AppConfig):
    """An app for its management commands (seed_demo, generate_traffic); it has no models."""

    name = "demo"
    verbose_name = "Demo"
