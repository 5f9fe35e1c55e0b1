from django.apps import AppConfig


class WorkloadsConfig(AppConfig):
    name = "workloads"
    verbose_name = "Workloads"

    def ready(self) -> None:
        # The project's own system checks (about settings, so they belong to no app) register on
        # import, like workloads.checks (about stored schemas). Action handlers too: import every
        # kind's module here, so a worker can run any action whatever else it imported.
        import workloads.checks  # noqa: F401
        from workloads import sqlite_regexp

        sqlite_regexp.register()
        from controlplane import checks  # noqa: F401
        from workloads.services import (  # noqa: F401
            backfill,
            class_deletion,
            deadletters,
            hold_actions,
            incidents,
            migration,
            provisioning,
            replay_run,
            runtime_control,
            scaling,
            subscriptions,
        )
