"""Public shipment tracking: by shipment id only, and no personal data."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound
from config.openapi import COMMON_ERRORS, NOT_FOUND
from support.models import TrackingEntry, TrackingRecord
from support.selectors import tracking_get


class TrackingEventOut(serializers.ModelSerializer):
    class Meta:
        model = TrackingEntry
        fields = ["status", "message", "timestamp"]


class TrackingOut(serializers.ModelSerializer):
    events = TrackingEventOut(source="entries", many=True)

    class Meta:
        model = TrackingRecord
        fields = ["shipment_id", "status", "events"]


class TrackingApi(APIView):
    name = "Tracking"
    permission_classes = [AllowAny]

    @extend_schema(summary="Track a shipment by its id", responses={200: TrackingOut, 404: NOT_FOUND, **COMMON_ERRORS},
                   auth=[])
    def get(self, request: Request, shipment_id: str) -> Response:
        record = tracking_get(shipment_id=shipment_id)
        if record is None:
            raise NotFound("shipment not found")
        return Response(TrackingOut(record).data)
