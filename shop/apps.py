from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop (orders)"

    def ready(self) -> None:
        from shop import handlers  # noqa: F401 - registers the queue handlers

        post_migrate.connect(_housekeeping_ensure, sender=self)


def _housekeeping_ensure(sender, **kwargs) -> None:
    from messaging.schedules import Housekeeping, schedules_ensure

    schedules_ensure([Housekeeping("idempotency-keys-prune", "shop.tasks.idempotency_keys_prune", minutes=60)])
