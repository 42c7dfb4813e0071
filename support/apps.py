from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Customer service (tracking, notifications)"

    def ready(self) -> None:
        from messaging.schedules import Housekeeping, schedules_on_migrate
        from support import handlers  # noqa: F401 - registers the queue handlers

        # The mail outbox's backstop: notifications are mailed on the commit that writes them; this
        # mails what that missed (a crash, a mail server away) and the retries.
        schedules_on_migrate(self, Housekeeping("notifications-mail", "support.tasks.notifications_mail", minutes=1))
