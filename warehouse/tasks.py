"""Scheduled warehouse steps (run by the qcluster workers)."""

from uuid import UUID

from warehouse import services


def picking_complete(order_id: str) -> None:
    services.reservation_pick(order_id=UUID(order_id))
