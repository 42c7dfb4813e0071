"""The demo's own messages: the simulated actors' timers (``sim.*``, on the ``sim_actors`` queue).

Only the simulation sends and hears them, so they live here rather than in ``contracts/``,
the product's published language. Defining them registers them like every contract
(``contracts.contract_for``); simulation/actors.py imports them.
"""

from __future__ import annotations

from uuid import UUID

from contracts import Contract
from contracts.messages import ShipmentId
from contracts.stages import ShipmentStage


class SimulatedPickingDone(Contract):
    """A simulated picker's timer: the order is picked."""

    TYPE = "sim.picking_done"
    order_id: UUID


class SimulatedStageReached(Contract):
    """A simulated driver's timer: the shipment reached ``status``."""

    TYPE = "sim.stage_reached"
    order_id: UUID
    shipment_id: ShipmentId
    status: ShipmentStage
