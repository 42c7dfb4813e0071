from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from shop.api import OrderDetailApi, OrderListCreateApi
from support.api import TrackingApi
from support.views import track_page

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("api/orders/<str:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("api/tracking/<str:shipment_id>/", TrackingApi.as_view(), name="tracking"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("track/<str:shipment_id>/", track_page, name="track"),
]
