"""Payments API for staff: what was charged, declined, voided or refunded for each order.

Read-only: payments move through messages only (the shop's requests and compensations, the
provider's answers). A user given ``payments.view_payment`` (as in the admin; the staff flag
alone is not enough) may read it.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers

from config.openapi import COMMON_ERRORS, NOT_FOUND
from config.permissions import ModelPermission
from config.read_api import ReadApi
from payments.models import Payment
from payments.selectors import payment_list

VIEW_PAYMENT_PERMISSION = "payments.view_payment"


class CanViewPayments(ModelPermission):
    """A user given ``payments.view_payment``."""

    message = "Reading payments needs the permission payments.view_payment."
    permission = VIEW_PAYMENT_PERMISSION


@extend_schema_field({"type": "string", "enum": Payment.Status.values}, component_name="PaymentStatus")
class PaymentStatusField(serializers.CharField):
    """A payment's status, as a named schema component (the order's has a "status" too)."""


class PaymentRecordOut(serializers.ModelSerializer):
    payment_id = serializers.UUIDField(source="id")
    status = PaymentStatusField()

    class Meta:
        model = Payment
        fields = ["payment_id", "order_id", "status", "amount", "currency", "method", "attempts",
                  "provider_reference", "refund_reference", "reason", "created_at", "updated_at",
                  "captured_at", "refunded_at"]


class PaymentFilter(django_filters.FilterSet):
    order_id = django_filters.UUIDFilter(help_text="The order's payment.")
    status = django_filters.ChoiceFilter(choices=Payment.Status.choices)

    class Meta:
        model = Payment
        fields = ["order_id", "status"]


class PaymentReadApi(ReadApi):
    permission_classes = [CanViewPayments]
    serializer_class = PaymentRecordOut
    rows = staticmethod(payment_list)


@extend_schema_view(get=extend_schema(summary="Payments, the latest first (permission payments.view_payment)",
                                      responses={200: PaymentRecordOut(many=True), **COMMON_ERRORS}))
class PaymentListApi(PaymentReadApi, generics.ListAPIView):
    name = "Payments"
    filterset_class = PaymentFilter


@extend_schema_view(get=extend_schema(summary="One payment (permission payments.view_payment)",
                                      responses={200: PaymentRecordOut, 404: NOT_FOUND, **COMMON_ERRORS}))
class PaymentDetailApi(PaymentReadApi, generics.RetrieveAPIView):
    name = "Payment"
    lookup_url_kwarg = "payment_id"  # a malformed id names no payment: 404 (config/read_api.py)
