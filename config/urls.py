"""The site's routes. config imports no app: each app's urls.py is included by name.

The API answers at /api/ and, as version 1 (the current one), at /api/v1/.
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api = [
    path("", include("shop.urls")),  # orders
    path("", include("transport.urls")),  # the drivers' stage reports
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api-auth/", include("rest_framework.urls")),  # the browsable API's login and logout
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include((api, "v1"))),
    path("api/", include((api, "api"))),
    path("", include("support.urls")),  # /track/<shipment_id>/ and /api/(v1/)tracking/<shipment_id>/
    path("", include("observability.urls")),  # /dashboard/, /healthz, /readyz, /metrics
]

handler400 = "config.api_errors.bad_request"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
