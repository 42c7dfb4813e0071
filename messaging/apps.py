from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging (outbox, relay, consumers)"

    def ready(self) -> None:
        from django.conf import settings

        from messaging.metrics import metrics_multiprocess_start
        from messaging.schedules import Housekeeping, schedules_on_migrate

        # every process of the system counts into the same folder (before it counts anything)
        metrics_multiprocess_start(settings.PROMETHEUS_MULTIPROC_DIR)
        post_migrate.connect(_history_partitions_ensure, sender=self)
        schedules_on_migrate(
            self,
            # Published outbox rows and old processed records do not pile up.
            Housekeeping("messages-prune", "messaging.tasks.messages_prune_daily", minutes=24 * 60),
            Housekeeping("history-partitions", "messaging.tasks.history_partitions_hourly", minutes=60),
        )


def _history_partitions_ensure(sender, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    from messaging.history import history_partitions_ensure

    # PostgreSQL: the history's partitions for the days ahead, at once (then hourly)
    history_partitions_ensure(using=using)
