"""The course's API, with its paths, status codes and shapes: a thin front on our services.

The course ("Integratsioonistsenaariumi läbimängimine") has a Flask e-shop on port 5001 and a
Flask customer service on port 5002; its ``test_integration.py`` talks to them. ``make
tutorial`` serves these views there (course/gunicorn.conf.py), one URLconf per port
(``urls_shop``, ``urls_tracking``), so that client runs unmodified against this system:

* ``POST /orders`` -> ``200 {"order_id", "status": "new"}``: the shop's own ``order_place``,
  its outbox and queues (no second road), for the guest customer (the client sends no token).
* ``GET /orders/<id>`` -> the order as the course's e-shop keeps it: ``status``, and once
  they are known ``warehouse_confirmation`` and ``delivery_status`` (``shipment_id``,
  ``status``, ...); only the guest's orders; ``404 {"error": ...}`` otherwise.
* ``GET /tracking/<shipment_id>`` -> ``shipment_id``, ``status``, ``events`` (``status``,
  ``message``, ``timestamp``), oldest first; ``404 {"error": ...}``. The course also shows the
  order id here; this public answer does not (it would open the order to anyone tracking it).

Every error is ``{"error": <what>}`` (with ``fields`` naming each bad field), a 4xx as the
course answers, never a 500. Timestamps are ISO 8601, amounts numbers as the course sends them.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import exception_handler
from config.errors import NotFound
from config.throttling import AnonThrottle, OrderPlacementThrottle
from course.services import guest_customer_get_or_create
from shop import selectors as shop_selectors
from shop import services as shop_services
from shop.api import OrderIn
from shop.idempotency import REPLAYED_HEADER, Answer, idempotency_key, request_fingerprint, request_once
from shop.models import Order, OrderLine, OrderStatus
from support.models import TrackingEntry, TrackingRecord
from support.selectors import tracking_get

# The course's own answers (its Flask apps return these).
ORDER_NOT_FOUND = "Tellimust ei leitud"
SHIPMENT_NOT_FOUND = "Saadetist ei leitud"


def course_exception_handler(exc: Exception, context: dict) -> Response | None:
    """The site's handler (its status codes: 400, 404, 405, 415, 429, 503; never a 500 for a
    client's input), with the body in the course's shape: ``{"error": ...}``."""
    response = exception_handler(exc, context)
    if response is not None:
        response.data = course_error_body(response.data)
    return response


def course_error_body(data) -> dict:
    if isinstance(data, dict) and set(data) == {"detail"}:
        return {"error": str(data["detail"])}
    return {"error": "invalid request", "fields": data}


class CourseApi(APIView):
    """No sign-in (the course's client sends none); the site's per-address request budgets."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_exception_handler(self):
        return course_exception_handler


# --- the e-shop (port 5001) -------------------------------------------------------------
class CourseItemOut(serializers.ModelSerializer):
    product_id = serializers.CharField(source="sku")
    unit_price = serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=False)

    class Meta:
        model = OrderLine
        fields = ["product_id", "name", "quantity", "unit_price"]


class CourseOrderOut(serializers.ModelSerializer):
    """The order as the course's e-shop keeps it: what was sent, ``order_id``, ``status``,
    ``created_at``; ``warehouse_confirmation`` once the warehouse answered, ``delivery_status``
    once customer service told about the shipment (the course adds each when it arrives)."""

    order_id = serializers.CharField(source="id")
    customer = serializers.SerializerMethodField()
    items = CourseItemOut(source="lines", many=True)
    total = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=False)

    class Meta:
        model = Order
        fields = ["order_id", "status", "customer", "shipping_address", "items", "shipping_method",
                  "payment_method", "total", "currency", "created_at"]

    def get_customer(self, order: Order) -> dict:
        return {"name": order.contact_name, "email": order.contact_email, "phone": order.contact_phone}

    def to_representation(self, order: Order) -> dict:
        data = super().to_representation(order)
        timestamp = serializers.DateTimeField().to_representation
        if order.warehouse_status:
            answered = next((change.at for change in order.history.all()
                             if change.status in (OrderStatus.CONFIRMED, OrderStatus.REJECTED)), None)
            data["warehouse_confirmation"] = {
                "order_id": data["order_id"], "status": order.warehouse_status, "message": order.warehouse_message,
                "processing_time": timestamp(answered) if answered else None}
        if order.shipment_id and order.delivery_status:
            data["delivery_status"] = {
                "order_id": data["order_id"], "shipment_id": order.shipment_id, "status": order.delivery_status,
                "message": order.delivery_message,
                "timestamp": timestamp(order.delivery_updated_at) if order.delivery_updated_at else None}
        return data


class CourseOrderPlaceApi(CourseApi):
    """``POST /orders``: the course's order body (the seed's: ``name`` and ``unit_price`` are
    not trusted, the catalogue prices the order). An ``Idempotency-Key`` is honoured as on the
    site's API."""

    throttle_classes = [AnonThrottle, OrderPlacementThrottle]

    def post(self, request: Request) -> Response:
        guest = guest_customer_get_or_create()

        def place() -> Answer:
            body = OrderIn(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            order = shop_services.order_place(
                customer=guest,
                contact=shop_services.Contact(**data["customer"]),
                shipping_address=dict(data["shipping_address"]),
                items=[shop_services.OrderItem(**item) for item in data["items"]],
                shipping_method=data["shipping_method"],
                payment_method=data["payment_method"],
                order_id=getattr(request, "request_id", None),
            )
            return Answer(status.HTTP_200_OK, {"order_id": str(order.id), "status": order.status})

        answer = request_once(
            user=guest.user, key=idempotency_key(request),
            fingerprint=request_fingerprint(operation="course.order.place", body=request.data),
            perform=place)
        response = Response(answer.body, status=answer.status)
        if answer.replayed:
            response[REPLAYED_HEADER] = "true"
        return response


class CourseOrderApi(CourseApi):
    """``GET /orders/<order_id>``: one of the guest's orders."""

    def get(self, request: Request, order_id: str) -> Response:
        guest = guest_customer_get_or_create()
        try:
            order = shop_selectors.order_get(user=guest.user, order_id=order_id)
        except NotFound:
            return Response({"error": ORDER_NOT_FOUND}, status=status.HTTP_404_NOT_FOUND)
        return Response(CourseOrderOut(order).data)


# --- customer service (port 5002) ---------------------------------------------------------
class CourseTrackingEventOut(serializers.ModelSerializer):
    class Meta:
        model = TrackingEntry
        fields = ["status", "message", "timestamp"]


class CourseTrackingOut(serializers.ModelSerializer):
    events = CourseTrackingEventOut(source="entries", many=True)

    class Meta:
        model = TrackingRecord
        fields = ["shipment_id", "status", "events"]


class CourseTrackingApi(CourseApi):
    """``GET /tracking/<shipment_id>``: anyone holding the shipment id; no personal data."""

    def get(self, request: Request, shipment_id: str) -> Response:
        record = tracking_get(shipment_id=shipment_id)
        if record is None:
            return Response({"error": SHIPMENT_NOT_FOUND}, status=status.HTTP_404_NOT_FOUND)
        return Response(CourseTrackingOut(record).data)


# --- what no view answers (each URLconf names these as its handlers) ----------------------
def not_found(request: HttpRequest, exception=None) -> JsonResponse:
    return JsonResponse({"error": "Not found"}, status=404)


def bad_request(request: HttpRequest, exception=None) -> JsonResponse:
    return JsonResponse({"error": "Bad request"}, status=400)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"error": "Internal error; it has been logged."}, status=500)
