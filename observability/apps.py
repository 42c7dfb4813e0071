from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability (dashboard, journeys, health, metrics, audit)"

    def ready(self) -> None:
        from django.conf import settings

        from messaging.schedules import Housekeeping, schedules_on_migrate
        from observability.tracing import tracing_setup

        # every few minutes: are all published messages accounted for? (the dashboard shows the last run)
        schedules_on_migrate(self, Housekeeping("audit", "observability.audit.audit_scheduled",
                                                minutes=settings.AUDIT_EVERY_MINUTES))
        tracing_setup()
