"""A shipment's stages, in order: transport records them, customer service and the shop follow them.

The order of stages is defined here once; ``stage_rank()`` compares two of them.
"""

from __future__ import annotations

from enum import StrEnum


class ShipmentStage(StrEnum):
    AWAITING_VEHICLE = "awaiting_vehicle"
    VEHICLE_ASSIGNED = "vehicle_assigned"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"


SHIPMENT_STAGES: tuple[ShipmentStage, ...] = tuple(ShipmentStage)

# The stages a shipment with a vehicle is driven through, each after the one before.
NEXT_STAGE: dict[ShipmentStage, ShipmentStage] = {
    ShipmentStage.VEHICLE_ASSIGNED: ShipmentStage.PICKED_UP,
    ShipmentStage.PICKED_UP: ShipmentStage.IN_TRANSIT,
    ShipmentStage.IN_TRANSIT: ShipmentStage.OUT_FOR_DELIVERY,
    ShipmentStage.OUT_FOR_DELIVERY: ShipmentStage.DELIVERED,
}


def stage_rank(stage: str) -> int:
    """Where ``stage`` comes in a shipment's life (-1 for no stage or an unknown one)."""
    try:
        return SHIPMENT_STAGES.index(ShipmentStage(stage))
    except ValueError:
        return -1
