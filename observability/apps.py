from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _schedules(sender, **kwargs) -> None:
    from django.conf import settings

    from messaging.schedules import Housekeeping, schedules_ensure

    # every few minutes: are all published messages accounted for? (the dashboard shows the last run)
    schedules_ensure([Housekeeping("audit", "observability.audit.audit_scheduled",
                                   minutes=settings.AUDIT_EVERY_MINUTES)])


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability (dashboard, journeys, health, metrics, audit)"

    def ready(self) -> None:
        from observability.tracing import tracing_setup

        post_migrate.connect(_schedules, sender=self)
        tracing_setup()
