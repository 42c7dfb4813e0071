"""The demo's simulated actors: warehouse staff who pick, drivers who drive.

In a real deployment people perform these steps through the owning app's commands (admin
actions, the driver API). Here an actor hears the event that gives it work, waits the
simulated time with a timer (a message due later, on the actors' own queue), and then calls
the very same command a person would. A timer that arrives after someone else already did
the step changes nothing: the command finds the state moved on.

On only when ``SIM_ACTORS`` is (off by default; the demo asks for it); ``manage.py consume
sim_actors`` runs them.
"""

from __future__ import annotations

import random

from django.conf import settings

from contracts.messages import PickingStarted, ShipmentStatusChanged
from contracts.stages import NEXT_STAGE
from messaging.envelope import Message
from messaging.registry import message_handler
from messaging.timers import timer_set
from simulation.clock import scaled
from simulation.contracts import SimulatedPickingDone, SimulatedStageReached
from transport import services as transport
from warehouse import services as warehouse

SIM_ACTORS = "sim_actors"
CONSUMER = "simulation.actors"
PRODUCER = "simulation"
SUBSCRIPTIONS = (PickingStarted.TYPE, ShipmentStatusChanged.TYPE)



def picking_seconds() -> float:
    return scaled(settings.SIM_PICKING_SECONDS)


def stage_seconds() -> float:
    low, high = settings.SIM_STAGE_SECONDS
    return scaled(random.uniform(low, high))


@message_handler(SIM_ACTORS, PickingStarted, consumer=CONSUMER)
def on_picking_started(data: PickingStarted, message: Message) -> None:
    """A picker takes the order; done after SIM_PICKING_SECONDS."""
    timer_set(SimulatedPickingDone(order_id=data.order_id), queue=SIM_ACTORS, correlation_id=data.order_id,
              producer=PRODUCER, after=picking_seconds())


@message_handler(SIM_ACTORS, SimulatedPickingDone, consumer=CONSUMER)
def on_picking_done(data: SimulatedPickingDone, message: Message) -> None:
    warehouse.picking_complete(order_id=data.order_id)


@message_handler(SIM_ACTORS, ShipmentStatusChanged, consumer=CONSUMER)
def on_shipment_status_changed(data: ShipmentStatusChanged, message: Message) -> None:
    """The driver of a shipment with a vehicle drives it to its next stage in SIM_STAGE_SECONDS."""
    next_stage = NEXT_STAGE.get(data.status)
    if next_stage is None:  # waiting for a vehicle, or delivered: nothing to drive
        return
    timer_set(SimulatedStageReached(order_id=data.order_id, shipment_id=data.shipment_id, status=next_stage),
              queue=SIM_ACTORS, correlation_id=data.order_id, producer=PRODUCER, after=stage_seconds())


@message_handler(SIM_ACTORS, SimulatedStageReached, consumer=CONSUMER)
def on_stage_reached(data: SimulatedStageReached, message: Message) -> None:
    transport.shipment_advance(shipment_id=data.shipment_id, to_status=data.status)
