from django.apps import AppConfig


class WorkloadsConfig(AppConfig):
    name = "workloads"
    verbose_name = "Workloads"

    def ready(self) -> None:
        # Action handlers register themselves on import; a worker must know every kind it may run.
        from workloads.services import incidents, scaling  # noqa: F401
