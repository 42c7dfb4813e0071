from django.apps import AppConfig


class TransportConfig(AppConfig):
    name = "transport"
    verbose_name = "Transport (vehicles, shipments)"

    def ready(self) -> None:
        from transport import handlers  # noqa: F401 - registers the queue handlers
