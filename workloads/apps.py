from django.apps import AppConfig


class WorkloadsConfig(AppConfig):
    name = "workloads"
    verbose_name = "Workloads"

    def ready(self) -> None:
        # Action handlers register themselves when their module is imported: import every kind's
        # module here, so a worker can run any action whatever else it imported.
        from workloads.services import deadletters, incidents, scaling, subscriptions  # noqa: F401
