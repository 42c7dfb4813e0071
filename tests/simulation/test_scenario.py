"""The demo's story: how each order of the scenario is meant to end, and when the run failed."""

from simulation.demo_data import DEMO_ORDERS, SEED_ORDER
from simulation.scenario import ScenarioOrder, order_expected, story_problems


def an_order(customer: str, status: str, *, expected: str = "delivered", **fields) -> ScenarioOrder:
    return ScenarioOrder(order_id=f"{customer.lower()}-0000-order", customer=customer, items="1× PRD001",
                         total="1299.99", currency="EUR", placed_at=0.0, expected=expected, status=status, **fields)


def the_story_as_meant() -> list[ScenarioOrder]:
    return [
        an_order("Jaan", "delivered", is_seed=True),
        an_order("Kristjan", "rejected", expected="rejected", over_stock=True),
        an_order("Piret", "payment_failed", expected="payment_failed",
                 compensation="stock returned (2× PRD002); payment declined, nothing charged"),
        an_order("Marko", "cancelled", expected="cancelled", compensation="nothing was reserved"),
    ]


def test_each_order_of_the_scenario_is_meant_to_end_so():
    # when
    expected = [order_expected(body) for body in (SEED_ORDER, *DEMO_ORDERS)]

    # then
    assert expected == ["delivered", "delivered", "delivered", "rejected", "delivered", "delivered", "delivered",
                        "payment_failed", "cancelled"]


def test_the_story_holds_when_every_order_ends_as_meant():
    # when
    problems = story_problems(the_story_as_meant())

    # then
    assert problems == []


def test_a_stuck_order_a_wrong_end_and_a_missing_compensation_fail_the_run():
    # given
    seed, over_stock, declined, cancelled = the_story_as_meant()
    seed.status, seed.delivery_status = "paid", "awaiting_vehicle"
    over_stock.status, over_stock.delivery_status, over_stock.delivery_message = "delivered", "delivered", "Delivered"
    cancelled.compensation = "reservation reserved"

    # when
    problems = story_problems([seed, over_stock, declined, cancelled])

    # then
    assert problems == [
        "order jaan-0000-order (Jaan) is stuck in paid, delivery awaiting_vehicle",
        "order kristjan-0000-order (Kristjan) ended delivered, expected rejected: delivered: Delivered",
        "order marko-0000-order (Marko) ended cancelled but its stock was not returned: reservation reserved",
    ]


def test_a_scenario_without_the_seed_or_an_over_stock_order_fails_the_run():
    # given
    orders = [an_order("Mari", "delivered")]

    # when
    problems = story_problems(orders)

    # then
    assert problems == [
        "the seed's order was not placed",
        "no order of the scenario asks for more than the seed's stock (DEMO_ORDERS)",
    ]


def test_an_order_takes_its_state_and_time_to_final_from_the_api():
    # given
    order = an_order("Jaan", "new", is_seed=True)

    # when
    order.apply({
        "status": "delivered", "created_at": "2026-01-05T10:00:00+00:00", "shipment_id": "SHP-1",
        "warehouse_confirmation": {"status": "confirmed", "message": "All items reserved"},
        "delivery_status": {"status": "delivered", "message": "Delivered", "timestamp": "2026-01-05T10:00:21+00:00"},
        "history": [{"status": "confirmed", "at": "2026-01-05T10:00:01+00:00"},
                    {"status": "delivered", "at": "2026-01-05T10:00:21.500000+00:00"}],
    })

    # then
    assert (order.status, order.is_final, order.shipment_id, order.describe(), order.final_seconds) == (
        "delivered", True, "SHP-1", "delivered: Delivered", 21.5)
