import secrets

from django.db import models


def new_shipment_id() -> str:
    """Random and unguessable (80 bits), never derived from the order id: it is a public handle."""
    return "SHP-" + secrets.token_hex(10).upper()


class Vehicle(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available", "available"
        BUSY = "busy", "busy"
        MAINTENANCE = "maintenance", "in maintenance"

    code = models.CharField(max_length=20, unique=True)
    type = models.CharField(max_length=30)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AVAILABLE, db_index=True)
    location = models.CharField(max_length=100)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.type}, {self.status})"


class ShipmentStatus(models.TextChoices):
    AWAITING_VEHICLE = "awaiting_vehicle", "awaiting a vehicle"
    VEHICLE_ASSIGNED = "vehicle_assigned", "vehicle assigned"
    PICKED_UP = "picked_up", "picked up"
    IN_TRANSIT = "in_transit", "in transit"
    OUT_FOR_DELIVERY = "out_for_delivery", "out for delivery"
    DELIVERED = "delivered", "delivered"


SHIPMENT_RANK = {
    ShipmentStatus.AWAITING_VEHICLE: 0,
    ShipmentStatus.VEHICLE_ASSIGNED: 1,
    ShipmentStatus.PICKED_UP: 2,
    ShipmentStatus.IN_TRANSIT: 3,
    ShipmentStatus.OUT_FOR_DELIVERY: 4,
    ShipmentStatus.DELIVERED: 5,
}
# The lifecycle each shipment plays once it has a vehicle.
NEXT_STAGE = {
    ShipmentStatus.VEHICLE_ASSIGNED: ShipmentStatus.PICKED_UP,
    ShipmentStatus.PICKED_UP: ShipmentStatus.IN_TRANSIT,
    ShipmentStatus.IN_TRANSIT: ShipmentStatus.OUT_FOR_DELIVERY,
    ShipmentStatus.OUT_FOR_DELIVERY: ShipmentStatus.DELIVERED,
}


class Shipment(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_shipment_id, editable=False)
    order_id = models.UUIDField(unique=True)
    recipient = models.CharField(max_length=200)
    shipping_address = models.JSONField()
    shipping_method = models.CharField(max_length=32)
    vehicle = models.ForeignKey(Vehicle, null=True, blank=True, on_delete=models.PROTECT, related_name="shipments")
    status = models.CharField(max_length=20, choices=ShipmentStatus.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # a plain index (db_index=True on a CharField adds a LIKE index, maintained by every stage)
        indexes = [models.Index(fields=["status"], name="shipment_status_idx")]
        # drivers record stages through the driver API without being staff
        permissions = [("record_shipment_stage", "Can record shipment stages (drivers)")]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class TrackingEvent(models.Model):
    # no index of its own: the unique (shipment, status) below serves lookups by shipment
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="events", db_index=False)
    status = models.CharField(max_length=20, choices=ShipmentStatus.choices)
    message = models.CharField(max_length=300)
    vehicle_code = models.CharField(max_length=20, blank=True)
    timestamp = models.DateTimeField()

    class Meta:
        ordering = ["timestamp", "id"]
        constraints = [models.UniqueConstraint(fields=["shipment", "status"], name="tracking_event_stage_once")]

    def __str__(self) -> str:
        return f"{self.shipment_id} {self.status}"
