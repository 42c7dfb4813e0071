from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Customer service (tracking, notifications)"

    def ready(self) -> None:
        from support import handlers  # noqa: F401 - registers the queue handlers

        post_migrate.connect(_housekeeping_ensure, sender=self)


def _housekeeping_ensure(sender, **kwargs) -> None:
    from messaging.schedules import Housekeeping, schedules_ensure

    # The mail outbox: notifications are mailed outside the transactions that write them.
    schedules_ensure([Housekeeping("notifications-mail", "support.tasks.notifications_mail", minutes=1)])
