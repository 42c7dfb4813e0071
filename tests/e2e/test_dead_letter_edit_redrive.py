"""A message parked for a bad payload, corrected by staff, re-driven and handled: on the real broker."""

import json
import uuid

import pika
import pytest
from django.utils import timezone

from messaging.models import DeadLetter
from messaging.services import dead_letter_edit, dead_letters_redrive
from shop.models import Order
from shop.services import Contact, OrderItem, order_place
from tests.harness import wait_until

pytestmark = pytest.mark.e2e


def test_a_corrected_dead_letter_is_redriven_and_handled(system, broker, catalogue, make_customer):
    # given: the shop's worker parks a customer.notified whose stage is unknown
    customer, _ = make_customer()
    order = order_place(customer=customer, contact=Contact(name="Mari", email="mari@example.com", phone=""),
                        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                        items=[OrderItem(product_id="PRD003", quantity=1)], shipping_method="standard",
                        payment_method="credit_card")
    system.start("relay")
    system.start("customer_notifications")
    payload = {"order_id": str(order.pk), "shipment_id": "SHP-FIXED1", "status": "teleported",
               "message": "Picked up from the warehouse by VEH001", "timestamp": timezone.now().isoformat()}
    broker.confirm_delivery()
    broker.basic_publish(exchange="", routing_key="customer_notifications", body=json.dumps(payload).encode(),
                         properties=pika.BasicProperties(message_id=str(uuid.uuid4()), type="customer.notified",
                                                         correlation_id=str(order.pk), delivery_mode=2))
    wait_until(lambda: DeadLetter.objects.exists(), timeout=30, what="the message parked")
    letter = DeadLetter.objects.get()
    assert letter.reason == "invalid"
    assert "status" in letter.error
    # when: staff correct the stage and re-drive it
    dead_letter_edit(dead_letter_id=letter.pk, body=json.dumps({**payload, "status": "picked_up"}), by="mari")
    assert dead_letters_redrive(dead_letter_ids=[letter.pk], by="mari") == (1, [])
    # then: the shop handles the corrected message
    wait_until(lambda: Order.objects.get(pk=order.pk).delivery_status == "picked_up", timeout=30,
               what="the corrected stage applied")
    assert Order.objects.get(pk=order.pk).shipment_id == "SHP-FIXED1"
    assert list(letter.changes.values_list("action", "by")) == [("edited", "mari"), ("redriven", "mari")]
    assert DeadLetter.objects.count() == 1
