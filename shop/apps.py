from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop (orders)"

    def ready(self) -> None:
        from messaging.schedules import Housekeeping, schedules_on_migrate
        from shop import handlers  # noqa: F401 - registers the queue handlers

        schedules_on_migrate(self, Housekeeping("idempotency-keys-prune", "shop.tasks.idempotency_keys_prune",
                                                minutes=60))
