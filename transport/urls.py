"""The driver API; included under "api/" by config/urls.py."""

from django.urls import path

from transport.api import ShipmentStageApi

app_name = "transport"

urlpatterns = [
    path("shipments/<str:shipment_id>/stage/", ShipmentStageApi.as_view(), name="shipment-stage"),
]
