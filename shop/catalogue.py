"""The public catalogue, ``GET /api/products/``: the shop's products and prices, with the
warehouse's availability.

The shop owns products and prices; the units on hand are the warehouse's. The shop reads them
without importing the warehouse: ``settings.CATALOGUE_STOCK_SELECTORS`` names the module that
answers two questions (``stock_on_hand(skus=...)`` -> {sku: units}, ``skus_in_stock()`` -> a
subquery of skus), and config/settings.py, where the apps are put together, names the
warehouse's selectors. docs/architecture.md says why this and not a copy kept from events.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from django.conf import settings
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from config.openapi import COMMON_ERRORS
from config.pagination import PageNumbers
from contracts.methods import PAYMENT_METHODS, SHIPPING_METHODS, TEST_PAYMENT_METHODS
from shop.models import Product
from shop.selectors import product_list


def _stock() -> ModuleType:
    """The warehouse's published stock reads (``CATALOGUE_STOCK_SELECTORS``)."""
    return import_module(settings.CATALOGUE_STOCK_SELECTORS)


class ProductOut(serializers.ModelSerializer):
    product_id = serializers.CharField(source="sku")
    available = serializers.SerializerMethodField(help_text="whether the warehouse has at least one unit")
    quantity_available = serializers.SerializerMethodField(help_text="units on hand in the warehouse")

    class Meta:
        model = Product
        fields = ["product_id", "name", "price", "currency", "available", "quantity_available"]

    def get_available(self, product: Product) -> bool:
        return self.get_quantity_available(product) > 0

    def get_quantity_available(self, product: Product) -> int:
        return self.context["on_hand"].get(product.sku, 0)


class ProductFilter(filters.FilterSet):
    product_id = filters.CharFilter(field_name="sku", help_text="exactly this product id")
    name = filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="name contains (any case)")
    min_price = filters.NumberFilter(field_name="price", lookup_expr="gte")
    max_price = filters.NumberFilter(field_name="price", lookup_expr="lte")
    currency = filters.CharFilter(field_name="currency")
    # a choice, not a BooleanFilter (which ignores a value it cannot read): "maybe" is a 400
    available = filters.ChoiceFilter(choices=[("true", "true"), ("false", "false")], method="filter_available",
                                     help_text="true: in stock; false: out of stock")
    ordering = filters.OrderingFilter(fields=(("sku", "product_id"), ("name", "name"), ("price", "price")))

    class Meta:
        model = Product
        fields: list[str] = []

    def filter_available(self, queryset: QuerySet[Product], name: str, value: str) -> QuerySet[Product]:
        in_stock = _stock().skus_in_stock()
        return queryset.filter(sku__in=in_stock) if value == "true" else queryset.exclude(sku__in=in_stock)


# The ways to pay; a test value (card_declined) is listed apart, never offered as a way to pay.
PAYING_METHODS = [method for method in PAYMENT_METHODS if method not in TEST_PAYMENT_METHODS]


class CataloguePages(PageNumbers):
    """Pages of products, with the shipping and payment methods an order may name."""

    def get_paginated_response(self, data) -> Response:
        response = super().get_paginated_response(data)
        response.data.update(shipping_methods=list(SHIPPING_METHODS), payment_methods=PAYING_METHODS,
                             test_payment_methods=list(TEST_PAYMENT_METHODS))
        return response

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        paginated["properties"].update(
            shipping_methods={"type": "array", "items": {"type": "string", "enum": list(SHIPPING_METHODS)},
                              "example": list(SHIPPING_METHODS)},
            payment_methods={"type": "array", "items": {"type": "string", "enum": PAYING_METHODS},
                             "example": PAYING_METHODS, "description": "the ways to pay"},
            test_payment_methods={
                "type": "array", "items": {"type": "string", "enum": list(TEST_PAYMENT_METHODS)},
                "example": list(TEST_PAYMENT_METHODS),
                "description": "TEST values, not ways to pay: an order may name them to try the API out "
                               "(card_declined is always declined)"},
        )
        paginated["required"] = [*paginated.get("required", []), "shipping_methods", "payment_methods",
                                 "test_payment_methods"]
        return paginated


class ProductListApi(ListAPIView):
    name = "Products"
    permission_classes = [AllowAny]
    serializer_class = ProductOut
    filterset_class = ProductFilter
    pagination_class = CataloguePages

    def get_queryset(self) -> QuerySet[Product]:
        return product_list()

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        page = getattr(self, "_page", None)
        context["on_hand"] = _stock().stock_on_hand(skus=[p.sku for p in page]) if page is not None else {}
        return context

    def paginate_queryset(self, queryset):
        self._page = super().paginate_queryset(queryset)
        return self._page

    @extend_schema(summary="The catalogue: products, prices, availability, and the methods an order may name",
                   responses={200: ProductOut(many=True), **COMMON_ERRORS}, auth=[], examples=[OpenApiExample(
                       "The seed's catalogue", response_only=True, status_codes=["200"], value={
                           "count": 4, "next": None, "previous": None,
                           "results": [
                               {"product_id": "PRD001", "name": "Laptop", "price": "1299.99", "currency": "EUR",
                                "available": True, "quantity_available": 10},
                               {"product_id": "PRD002", "name": "Monitor 27\"", "price": "329.99", "currency": "EUR",
                                "available": True, "quantity_available": 15},
                           ],
                           "shipping_methods": list(SHIPPING_METHODS), "payment_methods": PAYING_METHODS,
                           "test_payment_methods": list(TEST_PAYMENT_METHODS)})])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
