from django.apps import AppConfig


class WarehouseConfig(AppConfig):
    name = "warehouse"
    verbose_name = "Warehouse (stock, reservations)"

    def ready(self) -> None:
        from warehouse import handlers  # noqa: F401 - registers the queue handlers
