"""One entry point for the outside world: /api/ (also as /api/v1/), /track/, /admin/, /dashboard/."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from observability import views as observability_views
from shop.api import OrderCancelApi, OrderDetailApi, OrderListCreateApi
from support.api import TrackingApi
from support.views import track_page

api_v1 = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<str:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path("tracking/<str:shipment_id>/", TrackingApi.as_view(), name="tracking"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # The versioned routes, and the contract's unversioned paths as the current version.
    path("api/v1/", include((api_v1, "v1"))),
    path("api/", include((api_v1, "api"))),
    path("api/", include("transport.urls")),
    path("track/<str:shipment_id>/", track_page, name="track"),
    path("dashboard/", include("observability.urls")),
    path("healthz", observability_views.healthz, name="healthz"),
    path("readyz", observability_views.readyz, name="readyz"),
    path("metrics", observability_views.metrics, name="metrics"),
    path("favicon.ico", observability_views.favicon),
]

handler400 = "config.api_errors.bad_request"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
