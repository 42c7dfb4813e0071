"""Stock API for warehouse staff: what is on the shelves and what is set aside for orders.

Read-only: stock changes through reservations (messages) and adjustments (the admin's
"Adjust stock" page, ``services.stock_adjust``). A user given ``warehouse.view_stockitem`` (as in
the admin; the staff flag alone is not enough) may read it.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers

from config.openapi import COMMON_ERRORS, NOT_FOUND
from config.permissions import ModelPermission
from config.read_api import ReadApi
from warehouse.models import StockItem
from warehouse.selectors import stock_with_holds

VIEW_STOCK_PERMISSION = "warehouse.view_stockitem"


class CanViewStock(ModelPermission):
    """A user given ``warehouse.view_stockitem``."""

    message = "Reading the stock needs the permission warehouse.view_stockitem."
    permission = VIEW_STOCK_PERMISSION


class StockItemOut(serializers.ModelSerializer):
    product_id = serializers.CharField(source="sku", help_text="The product's id (the warehouse's sku).")
    available = serializers.IntegerField(source="quantity_on_hand", help_text="Units left to sell.")
    held = serializers.IntegerField(help_text="Units reserved for orders and not yet picked.")
    on_hand = serializers.IntegerField(help_text="Units on the shelf: available and held together.")
    location = serializers.CharField(help_text="The bin location, e.g. A-01-01.")

    class Meta:
        model = StockItem
        fields = ["product_id", "name", "location", "on_hand", "held", "available", "updated_at"]


class StockFilter(django_filters.FilterSet):
    location = django_filters.CharFilter(max_length=StockItem._meta.get_field("location").max_length)
    in_stock = django_filters.ChoiceFilter(choices=[("true", "true"), ("false", "false")], method="_in_stock",
                                           help_text="true: only items with units left to sell; false: only sold out.")

    class Meta:
        model = StockItem
        fields = ["location", "in_stock"]

    def _in_stock(self, queryset, name, value):
        return queryset.filter(quantity_on_hand__gt=0) if value == "true" else queryset.filter(quantity_on_hand__lte=0)


class StockReadApi(ReadApi):
    permission_classes = [CanViewStock]
    serializer_class = StockItemOut
    rows = staticmethod(stock_with_holds)


@extend_schema_view(get=extend_schema(summary="The stock, by product (warehouse staff)",
                                      responses={200: StockItemOut(many=True), **COMMON_ERRORS}))
class StockListApi(StockReadApi, generics.ListAPIView):
    name = "Stock"
    filterset_class = StockFilter


@extend_schema_view(get=extend_schema(summary="One product's stock (warehouse staff)",
                                      responses={200: StockItemOut, 404: NOT_FOUND, **COMMON_ERRORS}))
class StockDetailApi(StockReadApi, generics.RetrieveAPIView):
    name = "Stock of one product"
    lookup_field = "sku"
    lookup_url_kwarg = "product_id"
