from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop (orders)"

    def ready(self) -> None:
        from shop import handlers  # noqa: F401 - registers the queue handlers
