from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Customer service (tracking, notifications)"

    def ready(self) -> None:
        from support import handlers  # noqa: F401 - registers the queue handlers
