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

    # The mail outbox's backstop: notifications are mailed on the commit that writes them; this
    # mails what that missed (a crash, a mail server away) and the retries.
    schedules_ensure([Housekeeping("notifications-mail", "support.tasks.notifications_mail", minutes=1)])
