import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Build, once and before any request, what Django and DRF otherwise build lazily on the
    first requests: concurrent first requests in a threaded worker raced on it (valid tokens
    answered 401 right after boot)."""
    from django.urls import get_resolver
    from rest_framework.authtoken.models import Token  # noqa: F401 - TokenAuthentication's lazy import

    from shop.api import OrderDetailOut, OrderIn, OrderOut

    get_resolver().url_patterns  # noqa: B018 - resolves every urlconf import
    for serializer in (OrderIn(), OrderOut(), OrderDetailOut()):
        serializer.fields  # noqa: B018 - DRF builds serializer fields lazily


_warm_up()
