"""The stock API; included under "api/" by config/urls.py."""

from django.urls import path

from warehouse.api import StockDetailApi, StockListApi

urlpatterns = [
    path("stock/", StockListApi.as_view(), name="stock-list"),
    path("stock/<str:product_id>/", StockDetailApi.as_view(), name="stock-detail"),
]
