"""Tracking for whoever holds a shipment id: the customer's page and the public API.

config/urls.py includes this at the site root: the page is not under /api/, so the API's two
prefixes (the current /api/ and version 1, /api/v1/) are spelled out here.
"""

from django.urls import path

from support.api import TrackingApi
from support.views import track_page

urlpatterns = [
    path("track/<str:shipment_id>/", track_page, name="track"),
    path("api/v1/tracking/<str:shipment_id>/", TrackingApi.as_view(), name="tracking"),
    path("api/tracking/<str:shipment_id>/", TrackingApi.as_view(), name="tracking"),
]
