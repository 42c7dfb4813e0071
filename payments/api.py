"""Payments API for staff: what was charged, declined, voided or refunded for each order.

Read-only: payments move through messages only (the shop's requests and compensations, the
provider's answers). A user given ``payments.view_payment`` (as in the admin; the staff flag
alone is not enough) may read it.
"""

from __future__ import annotations

from uuid import UUID

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound

from config.openapi import COMMON_ERRORS, NOT_FOUND
from config.permissions import ModelPermission
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


@extend_schema_view(get=extend_schema(summary="Payments, the latest first (permission payments.view_payment)",
                                      responses={200: PaymentRecordOut(many=True), **COMMON_ERRORS}))
class PaymentListApi(generics.ListAPIView):
    name = "Payments"
    permission_classes = [CanViewPayments]
    serializer_class = PaymentRecordOut
    filterset_class = PaymentFilter

    def get_queryset(self):
        return payment_list()


@extend_schema_view(get=extend_schema(summary="One payment (permission payments.view_payment)",
                                      responses={200: PaymentRecordOut, 404: NOT_FOUND, **COMMON_ERRORS}))
class PaymentDetailApi(generics.RetrieveAPIView):
    name = "Payment"
    permission_classes = [CanViewPayments]
    serializer_class = PaymentRecordOut
    lookup_url_kwarg = "payment_id"

    def get_queryset(self):
        return payment_list()

    def get_object(self):
        try:  # an id that is no UUID names no payment: 404, not a database error
            UUID(self.kwargs[self.lookup_url_kwarg])
        except ValueError:
            raise NotFound("payment not found") from None
        return super().get_object()
