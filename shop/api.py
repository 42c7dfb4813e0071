"""Orders API: thin views -- input serializer -> service/selector -> output serializer."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from config.authentication import AuthenticatedRequest
from config.openapi import COMMON_ERRORS, CONFLICT, NOT_FOUND
from config.throttling import AnonThrottle, OrderPlacementThrottle, UserThrottle
from contracts.methods import PAYMENT_METHOD_CHOICES, SHIPPING_METHOD_CHOICES, PaymentMethod, ShippingMethod
from shop import selectors, services
from shop.addresses import country_code, postal_code_problem
from shop.api_docs import ORDER_EXAMPLES, PLACE_ORDER_DESCRIPTION, PLACE_ORDER_EXAMPLES
from shop.idempotency import (
    IDEMPOTENCY_KEY_PARAMETER,
    REPLAYED_HEADER,
    REUSED_KEY,
    Answer,
    idempotency_key,
    request_fingerprint,
    request_once,
)
from shop.models import Order, OrderLine, OrderStatus


# --- input ----------------------------------------------------------------------------
class CustomerIn(serializers.Serializer):
    """Who the order is for, and where to tell them about it: name and e-mail are required."""

    name = serializers.CharField(max_length=200, help_text="The recipient's name, as on the parcel.")
    email = serializers.EmailField(max_length=254, help_text="Where the order's news is sent.")
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True, default="",
                                  help_text="For the courier; optional.")

    def to_internal_value(self, data):
        if isinstance(data, str):  # a bare name: the missing e-mail is then named as such
            data = {"name": data}
        return super().to_internal_value(data)


class AddressIn(serializers.Serializer):
    """A deliverable address: street, city, postal code and country are required; the postal code
    is checked against the country's format where the shop knows it (Estonia: five digits)."""

    street = serializers.CharField(max_length=200, help_text="Street, house and flat.")
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20, help_text="In the country's format (Estonia: five digits).")
    country = serializers.CharField(max_length=100, help_text='A name ("Estonia") or an ISO 3166 code ("EE").')

    def to_internal_value(self, data):
        if isinstance(data, str):  # a bare street: the missing fields are then named as such
            data = {"street": data}
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        code = country_code(attrs["country"])
        if code is None:
            raise serializers.ValidationError(
                {"country": ['not a country the shop knows: its name in English ("Estonia") or its ISO code ("EE")']})
        problem = postal_code_problem(country=code, postal_code=attrs["postal_code"])
        if problem:
            raise serializers.ValidationError({"postal_code": [problem]})
        return attrs


class OrderItemIn(serializers.Serializer):
    """``name`` and ``unit_price`` sent by a client are ignored: the catalogue sets both."""

    product_id = serializers.CharField(max_length=32)
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class OrderIn(serializers.Serializer):
    customer = CustomerIn()
    shipping_address = AddressIn()
    items = OrderItemIn(many=True, allow_empty=False, max_length=50)  # type: ignore[call-arg]  # ListSerializer's; the stubs lack it
    shipping_method = serializers.ChoiceField(SHIPPING_METHOD_CHOICES, required=False,
                                              default=ShippingMethod.STANDARD.value)
    payment_method = serializers.ChoiceField(PAYMENT_METHOD_CHOICES, required=False,
                                             default=PaymentMethod.CREDIT_CARD.value,
                                             help_text='"card_declined" is a TEST value: always declined.')

    def get_initial(self) -> dict:
        """An empty order with one empty line: the browsable API's form shows the whole shape."""
        initial = super().get_initial()
        if not hasattr(self, "initial_data"):
            initial["items"] = [OrderItemIn().get_initial()]
        return initial


# --- output ---------------------------------------------------------------------------
class OrderLineOut(serializers.ModelSerializer):
    product_id = serializers.CharField(source="sku")
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        model = OrderLine
        fields = ["product_id", "name", "quantity", "unit_price", "line_total"]


class WarehouseConfirmationOut(serializers.Serializer):
    status = serializers.CharField(source="warehouse_status", allow_null=True)
    message = serializers.CharField(source="warehouse_message", allow_null=True)


class PaymentOut(serializers.Serializer):
    status = serializers.CharField(source="payment_status", allow_null=True)
    message = serializers.CharField(source="payment_message", allow_null=True)
    reference = serializers.CharField(source="payment_reference", allow_null=True)


class DeliveryStatusOut(serializers.Serializer):
    status = serializers.CharField(source="delivery_status", allow_null=True)
    message = serializers.CharField(source="delivery_message", allow_null=True)
    timestamp = serializers.DateTimeField(source="delivery_updated_at", allow_null=True)


class StatusChangeOut(serializers.Serializer):
    status = serializers.CharField()
    note = serializers.CharField()
    at = serializers.DateTimeField()


class OrderOut(serializers.ModelSerializer):
    order_id = serializers.UUIDField(source="id")
    customer = serializers.SerializerMethodField()
    items = OrderLineOut(source="lines", many=True)
    warehouse_confirmation = WarehouseConfirmationOut(source="*")
    payment = PaymentOut(source="*")
    delivery_status = DeliveryStatusOut(source="*")
    shipment_id = serializers.CharField(allow_null=True)

    class Meta:
        model = Order
        fields = [
            "order_id", "status", "customer", "shipping_address", "shipping_method", "payment_method",
            "items", "total", "currency", "warehouse_confirmation", "payment", "shipment_id", "delivery_status",
            "created_at", "updated_at",
        ]

    @extend_schema_field(CustomerIn)
    def get_customer(self, order: Order) -> dict:
        return {"name": order.contact_name, "email": order.contact_email, "phone": order.contact_phone}

    def to_representation(self, order: Order) -> dict:
        data = super().to_representation(order)
        data["shipment_id"] = order.shipment_id or None
        for key in ("warehouse_confirmation", "payment", "delivery_status"):
            data[key] = {k: (v or None) for k, v in data[key].items()}
        return data


class OrderDetailOut(OrderOut):
    history = StatusChangeOut(many=True)

    class Meta(OrderOut.Meta):
        fields = OrderOut.Meta.fields + ["history"]


# --- views ----------------------------------------------------------------------------
class OrderFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=OrderStatus.choices, help_text="one or more (repeat the parameter)")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                              help_text="placed at or after (ISO 8601)")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt",
                                               help_text="placed before (ISO 8601)")
    ordering = filters.OrderingFilter(fields=(("created_at", "created_at"),),
                                      help_text="created_at (oldest first) or -created_at (newest first, the default)")

    class Meta:
        model = Order
        fields: list[str] = []


class OrderListCreateApi(GenericAPIView):
    name = "Orders"
    permission_classes = [IsAuthenticated]
    throttle_classes = [UserThrottle, AnonThrottle, OrderPlacementThrottle]
    serializer_class = OrderOut
    filterset_class = OrderFilter

    def get_serializer_class(self):
        # the browsable API's form for placing an order shows what to send, not what comes back
        return OrderIn if self.request is not None and self.request.method == "POST" else OrderOut

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Order.objects.none()
        return selectors.order_list(user=self.request.user)  # type: ignore[arg-type]  # IsAuthenticated: a user

    @extend_schema(summary="Your orders (staff: all orders), newest first; filter by status and time",
                   responses={200: OrderOut(many=True), **COMMON_ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(OrderOut(page, many=True).data)

    @extend_schema(summary="Place an order (answered at once; it then moves on by itself)", request=OrderIn,
                   description=PLACE_ORDER_DESCRIPTION, examples=PLACE_ORDER_EXAMPLES,
                   parameters=[IDEMPOTENCY_KEY_PARAMETER],
                   responses={201: OrderOut, 422: REUSED_KEY, **COMMON_ERRORS})
    def post(self, request: AuthenticatedRequest) -> Response:
        def place() -> Answer:
            body = OrderIn(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            order = services.order_place(
                customer=services.customer_for_user(user=request.user),
                contact=services.Contact(**data["customer"]),
                shipping_address=dict(data["shipping_address"]),
                items=[services.OrderItem(**item) for item in data["items"]],
                shipping_method=data["shipping_method"],
                payment_method=data["payment_method"],
                order_id=getattr(request, "request_id", None),
            )
            return Answer(status.HTTP_201_CREATED, OrderOut(order).data)

        return _answered(request_once(
            user=request.user, key=idempotency_key(request),
            fingerprint=request_fingerprint(operation="order.place", body=request.data), perform=place))


class OrderDetailApi(GenericAPIView):
    name = "Order"
    permission_classes = [IsAuthenticated]
    serializer_class = OrderDetailOut

    @extend_schema(summary="One order (yours; staff: any)", examples=ORDER_EXAMPLES,
                   description="Where the order is now: `status`, the warehouse's answer, the payment, the "
                               "shipment and its latest stage, and the order's `history`, oldest first.",
                   responses={200: OrderDetailOut, 404: NOT_FOUND, **COMMON_ERRORS})
    def get(self, request: AuthenticatedRequest, order_id: str) -> Response:
        order = selectors.order_get(user=request.user, order_id=order_id)
        return Response(OrderDetailOut(order).data)


class OrderCancelApi(GenericAPIView):
    name = "Cancel an order"
    permission_classes = [IsAuthenticated]
    serializer_class = OrderDetailOut

    @extend_schema(summary="Cancel your order before picking starts", request=None,
                   parameters=[IDEMPOTENCY_KEY_PARAMETER],
                   responses={200: OrderDetailOut, 404: NOT_FOUND, 409: CONFLICT, 422: REUSED_KEY, **COMMON_ERRORS})
    def post(self, request: AuthenticatedRequest, order_id: str) -> Response:
        def cancel() -> Answer:
            services.order_cancel(user=request.user, order_id=order_id)
            return Answer(status.HTTP_200_OK,
                          OrderDetailOut(selectors.order_get(user=request.user, order_id=order_id)).data)

        return _answered(request_once(
            user=request.user, key=idempotency_key(request),
            fingerprint=request_fingerprint(operation=f"order.cancel:{order_id}", body=None), perform=cancel))


def _answered(answer: Answer) -> Response:
    response = Response(answer.body, status=answer.status)
    if answer.replayed:
        response[REPLAYED_HEADER] = "true"
    return response
