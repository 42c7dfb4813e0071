"""The catalogue API; config/urls.py includes it with the rest of the API (/api/, /api/v1/)."""

from django.urls import path

from observability.api import ProductListApi

urlpatterns = [
    path("products/", ProductListApi.as_view(), name="product-list"),
]
