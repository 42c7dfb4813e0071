import secrets

from django.conf import settings
from django.db import models

from contracts import stages
from contracts.stages import ShipmentStage

RECORD_STAGE_CODENAME = "record_shipment_stage"


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


class Driver(models.Model):
    """A driver's account and the vehicle they drive: they record stages only for that
    vehicle's shipments (anyone else's is a 404 to them)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="driver")
    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT, related_name="drivers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} drives {self.vehicle.code}"


class ShipmentStatus(models.TextChoices):
    """A shipment's stage, as a model field's choices. The stages and their order are
    contracts.stages' (the one definition); this adds the labels staff read."""

    AWAITING_VEHICLE = ShipmentStage.AWAITING_VEHICLE.value, "awaiting a vehicle"
    VEHICLE_ASSIGNED = ShipmentStage.VEHICLE_ASSIGNED.value, "vehicle assigned"
    PICKED_UP = ShipmentStage.PICKED_UP.value, "picked up"
    IN_TRANSIT = ShipmentStage.IN_TRANSIT.value, "in transit"
    OUT_FOR_DELIVERY = ShipmentStage.OUT_FOR_DELIVERY.value, "out for delivery"
    DELIVERED = ShipmentStage.DELIVERED.value, "delivered"


# The stage that follows each stage a shipment with a vehicle is driven through.
NEXT_STAGE: dict[str, ShipmentStatus] = {
    ShipmentStatus(stage): ShipmentStatus(next_stage) for stage, next_stage in stages.NEXT_STAGE.items()
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
        permissions = [(RECORD_STAGE_CODENAME, "Can record shipment stages (drivers)")]

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
