"""Scheduled transport steps (run by the qcluster workers)."""

from transport import services


def shipment_advance(shipment_id: str, to_status: str) -> None:
    services.shipment_advance(shipment_id=shipment_id, to_status=to_status)
