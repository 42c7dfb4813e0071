"""Driver API: a driver records the stage a shipment on their vehicle reached (a dispatcher: any).

Thin: input serializer -> ``shipment_advance`` -> output serializer. The service decides
under the shipment's row lock and returns the shipment either way; the status read here
beforehand tells a recorded stage (200) from a repeated, late or out-of-order one, which
changes nothing and is a 409 naming the stage expected.
"""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import Conflict, NotFound
from config.openapi import COMMON_ERRORS, CONFLICT, NOT_FOUND
from config.permissions import ModelPermission
from transport import services
from transport.models import NEXT_STAGE, Shipment, ShipmentStatus, TrackingEvent
from transport.selectors import driver_vehicle_id, shipment_status_get

RECORD_STAGE_PERMISSION = "transport.record_shipment_stage"
# The stages a driver records: each follows another (vehicle_assigned -> picked_up -> ... -> delivered).
DRIVEABLE_STAGES = list(NEXT_STAGE.values())
SHIPMENT_ID_MAX_LENGTH = cast(int, Shipment._meta.get_field("id").max_length)  # a CharField's


class CanRecordShipmentStage(ModelPermission):
    """A driver (bound to a vehicle), or a dispatcher -- staff -- given
    ``transport.record_shipment_stage``, as the admin's action asks. The staff flag alone, or
    the permission without a vehicle or the staff flag, records nothing."""

    message = ("Recording shipment stages needs the permission transport.record_shipment_stage, and a vehicle "
               "to drive (drivers) or the staff flag (dispatchers).")
    permission = RECORD_STAGE_PERMISSION

    def has_permission(self, request: Request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        return request.user.is_staff or driver_vehicle_id(user=request.user) is not None


# --- input ----------------------------------------------------------------------------
# Its own schema component: an inline enum of a field named "status" beside the order's would
# make drf-spectacular rename the order's StatusEnum (a hashed name, and a warning).
@extend_schema_field({"type": "string", "enum": [stage.value for stage in DRIVEABLE_STAGES],
                      "description": "The stage the shipment reached."}, component_name="ShipmentStage")
class ShipmentStageField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(choices=[(stage.value, stage.label) for stage in DRIVEABLE_STAGES], **kwargs)


class ShipmentStageIn(serializers.Serializer):
    status = ShipmentStageField()


# --- output ---------------------------------------------------------------------------
@extend_schema_field({"type": "string", "enum": ShipmentStatus.values}, component_name="ShipmentStatus")
class ShipmentStatusField(serializers.CharField):
    """A shipment's status, as a named schema component (see ShipmentStageField)."""


class ShipmentEventOut(serializers.ModelSerializer):
    status = ShipmentStatusField()

    class Meta:
        model = TrackingEvent
        fields = ["status", "message", "vehicle_code", "timestamp"]


class ShipmentStageOut(serializers.ModelSerializer):
    shipment_id = serializers.CharField(source="id")
    status = ShipmentStatusField()
    events = ShipmentEventOut(many=True)

    class Meta:
        model = Shipment
        fields = ["shipment_id", "status", "events"]


def _shipment_status(shipment_id: str, vehicle_id: int | None) -> str | None:
    """The shipment's current status; None when there is no such shipment (on the driver's
    vehicle, for a driver). An id no shipment can have (too long, control characters:
    PostgreSQL refuses NUL) is not looked up."""
    if len(shipment_id) > SHIPMENT_ID_MAX_LENGTH or not shipment_id.isprintable():
        return None
    return shipment_status_get(shipment_id=shipment_id, vehicle_id=vehicle_id)


def _stage_refused(current: str, to_status: str) -> Conflict:
    expected = NEXT_STAGE.get(current)
    if current == ShipmentStatus.AWAITING_VEHICLE:
        return Conflict(f"the shipment is {current}: no stage can be recorded before a vehicle is assigned")
    if expected is None:
        return Conflict(f"the shipment is {current}; no stage follows")
    already = "already " if current == to_status else ""
    return Conflict(f"the shipment is {already}{current}; the next stage to record is {expected}, not {to_status}")


# --- views ----------------------------------------------------------------------------
class ShipmentStageApi(APIView):
    name = "Record a shipment's stage"
    permission_classes = [CanRecordShipmentStage]

    @extend_schema(
        summary="Record the stage a shipment reached (drivers: their vehicle's; dispatchers)",
        description="Stages follow one another: vehicle_assigned -> picked_up -> in_transit -> "
                    "out_for_delivery -> delivered. The stage the shipment is at, sent again, answers "
                    "200 and changes nothing (a retry); any other stage is refused with 409 and changes nothing.",
        request=ShipmentStageIn,
        responses={200: ShipmentStageOut, 404: NOT_FOUND, 409: CONFLICT, **COMMON_ERRORS},
    )
    def post(self, request: Request, shipment_id: str) -> Response:
        body = ShipmentStageIn(data=request.data)
        body.is_valid(raise_exception=True)
        to_status = body.validated_data["status"]
        # a driver sees only their vehicle's shipments: another's is a 404, as if there were none
        vehicle_id = driver_vehicle_id(user=request.user)
        current = _shipment_status(shipment_id, vehicle_id)
        if current is None:
            raise NotFound("shipment not found")
        if current != to_status and NEXT_STAGE.get(current) != to_status:
            raise _stage_refused(current, to_status)
        # The stage reached is recorded once; the same stage sent again (a driver's app retrying
        # after a lost answer) gets the same answer and changes nothing.
        shipment = services.shipment_advance(shipment_id=shipment_id, to_status=to_status, vehicle_id=vehicle_id)
        if shipment is None:  # pragma: no cover - shipments are never deleted nor moved to another vehicle
            raise NotFound("shipment not found")
        if shipment.status != to_status:  # another stage was recorded meanwhile
            raise _stage_refused(shipment.status, to_status)
        return Response(ShipmentStageOut(shipment).data)
