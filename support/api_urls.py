"""The public tracking API; config/urls.py includes it with the rest of the API (/api/, /api/v1/)."""

from django.urls import path

from support.api import TrackingApi

urlpatterns = [
    path("tracking/<str:shipment_id>/", TrackingApi.as_view(), name="tracking"),
]
