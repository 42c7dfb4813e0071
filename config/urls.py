"""The site's routes. config imports no app: each app's urls.py is included by name.

The API answers at /api/ and, as version 1 (the current one), at /api/v1/.
"""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from config.views import ApiDocs, ApiRedoc, ApiRootApi, ApiSchema, home

api: list[URLPattern | URLResolver] = [
    path("", ApiRootApi.as_view(), name="root"),
    path("", include("shop.urls")),  # the catalogue, orders
    path("", include("accounts.urls")),  # sign-in: API tokens
    path("", include("support.api_urls")),  # public tracking
    path("", include("transport.urls")),  # the drivers' stage reports
    path("", include("warehouse.urls")),  # stock, for warehouse staff
    path("", include("payments.urls")),  # payments, for staff
]

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api-auth/", include("rest_framework.urls")),  # the browsable API's login and logout
    path("api/schema/", ApiSchema.as_view(), name="schema"),
    # Swagger UI's own script is served by the same view (``?script``), not inline: the CSP allows it
    path("api/docs/", ApiDocs.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", ApiRedoc.as_view(url_name="schema", template_name="redoc.html"), name="redoc"),
    path("api/v1/", include((api, "v1"))),
    path("api/", include((api, "api"))),
    path("", include("support.urls")),  # /track/ and /track/<shipment_id>/
    path("", include("observability.urls")),  # /dashboard/, /healthz, /readyz, /metrics
]

handler400 = "config.api_errors.bad_request"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
