"""The orders and sign-in API; config/urls.py includes it under "api/" (and "api/v1/")."""

from django.urls import path

from shop.api import OrderCancelApi, OrderDetailApi, OrderListCreateApi, TokenObtainApi, TokenRotateApi

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<str:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path("auth/token/", TokenObtainApi.as_view(), name="token"),
    path("auth/token/rotate/", TokenRotateApi.as_view(), name="token-rotate"),
]
