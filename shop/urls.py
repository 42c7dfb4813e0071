"""The orders and catalogue API; config/urls.py includes it under "api/" (and "api/v1/")."""

from django.urls import path

from shop.api import OrderCancelApi, OrderDetailApi, OrderListCreateApi
from shop.catalogue import ProductListApi

urlpatterns = [
    path("products/", ProductListApi.as_view(), name="product-list"),
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<str:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
]
