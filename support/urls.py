"""The customer's tracking pages; config/urls.py includes this at the site root (the tracking
API is support/api_urls.py, under /api/)."""

from django.urls import path

from support.views import track_page, track_search

urlpatterns = [
    path("track/", track_search, name="track-search"),
    path("track/<str:shipment_id>/", track_page, name="track"),
]
