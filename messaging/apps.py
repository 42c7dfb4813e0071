from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging (outbox, relay, consumers)"

    def ready(self) -> None:
        post_migrate.connect(_housekeeping_ensure, sender=self)


def _housekeeping_ensure(sender, **kwargs) -> None:
    from messaging.schedules import Housekeeping, schedules_ensure

    # Published outbox rows and old processed records do not pile up.
    schedules_ensure([Housekeeping("messages-prune", "messaging.tasks.messages_prune_daily", minutes=24 * 60)])
