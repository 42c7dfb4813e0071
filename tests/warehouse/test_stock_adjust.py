"""Stock that cannot be oversold by hand: a change of stock is an adjustment with a reason, kept
as history and announced; the stock row itself is neither edited nor deleted in the admin."""

import re
import uuid

import pytest

from config.errors import DomainError
from messaging import topology
from messaging.models import OutboxMessage
from warehouse.models import Reservation, StockAdjustment, StockItem
from warehouse.selectors import stock_with_holds
from warehouse.services import RequestedLine, stock_adjust, stock_reserve

pytestmark = pytest.mark.django_db


def reserve(quantity: int, sku: str = "PRD001") -> uuid.UUID:
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[RequestedLine(sku=sku, quantity=quantity)], recipient="Jaan Tamm",
                  shipping_address={"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117",
                                    "country": "Estonia"}, shipping_method="express")
    return order_id


def figures(sku: str = "PRD001") -> tuple[int, int, int]:
    item = stock_with_holds().get(sku=sku)
    return item.on_hand, item.held, item.quantity_on_hand  # type: ignore[attr-defined]  # annotated by stock_with_holds()


@pytest.fixture
def followed(monkeypatch):
    """A queue subscribed to stock.adjusted (none in the product yet), so that the event is written."""
    monkeypatch.setitem(topology.EVENT_SUBSCRIPTIONS, "stock.adjusted", (topology.SUPPORT_REQUESTS,))


def test_a_shelf_count_includes_the_held_units_and_sets_what_is_left_to_sell(catalogue, followed):
    # given: 10 laptops, 3 held for an order
    reserve(3)
    assert figures() == (10, 3, 7)
    # when: the worker counts 8 on the shelf (two went missing)
    adjustment = stock_adjust(sku="PRD001", reason="counted", quantity=8, note="yearly count", made_by="kadri")
    # then: on hand 8, still 3 held, 5 left to sell; the history and the event say so
    assert figures() == (8, 3, 5)
    assert (adjustment.reason, adjustment.quantity, adjustment.change, adjustment.on_hand_after, adjustment.held,
            adjustment.available_after, adjustment.note, adjustment.made_by) == (
        "counted", 8, -2, 8, 3, 5, "yearly count", "kadri")
    [event] = OutboxMessage.objects.filter(type="stock.adjusted")
    assert {k: v for k, v in event.payload.items() if k != "adjusted_at"} == {
        "adjustment_id": str(adjustment.id), "product_id": "PRD001", "reason": "counted", "change": -2,
        "on_hand": 8, "held": 3, "available": 5}
    assert event.correlation_id == str(adjustment.id)


def test_received_adds_and_damaged_writes_off_what_is_left_to_sell(catalogue, followed):
    # given
    reserve(4)
    # when
    stock_adjust(sku="PRD001", reason="received", quantity=5)
    stock_adjust(sku="PRD001", reason="damaged", quantity=2, note="dropped from the forklift")
    # then
    assert figures() == (13, 4, 9)
    assert list(StockAdjustment.objects.order_by("made_at").values_list("reason", "change", "on_hand_after")) == [
        ("received", 5, 15), ("damaged", -2, 13)]
    assert OutboxMessage.objects.filter(type="stock.adjusted").count() == 2


@pytest.mark.parametrize(("reason", "quantity", "field", "message"), [
    ("counted", 2, "quantity", "counted 2, but 3 are held for orders: count again, or release those orders first"),
    ("damaged", 8, "quantity", "only 7 left to sell (3 held for orders): at most 7 can be written off"),
    ("received", 0, "quantity", "received: at least one unit"),
    ("received", -1, "quantity", "must be a whole number from 0 to 1000000"),
    ("stolen", 1, "reason", "must be one of counted, received, damaged"),
])
def test_an_adjustment_that_would_take_held_units_is_refused_and_changes_nothing(catalogue, reason, quantity,
                                                                                 field, message):
    # given
    reserve(3)
    # when
    with pytest.raises(DomainError) as refused:
        stock_adjust(sku="PRD001", reason=reason, quantity=quantity)
    # then
    assert (refused.value.field, refused.value.message) == (field, message)
    assert figures() == (10, 3, 7)
    assert StockAdjustment.objects.count() == 0


def test_the_stock_page_shows_on_hand_held_and_available_apart_and_offers_no_edit(catalogue, admin_client):
    # given
    reserve(3)
    item = StockItem.objects.get(sku="PRD001")
    # when
    listing = admin_client.get("/admin/warehouse/stockitem/").content.decode()
    page = admin_client.get(f"/admin/warehouse/stockitem/{item.pk}/change/")
    # then: the list names the three figures and the bin
    for heading in ("On hand (on the shelf)", "Held for orders", "Available (left to sell)", "Bin"):
        assert heading in listing
    row = re.search(r'<tr>.*?PRD001.*?</tr>', listing, re.S).group(0)
    assert re.findall(r'<td class="field-(on_hand|held|available)">(\d+)</td>', row) == [
        ("on_hand", "10"), ("held", "3"), ("available", "7")]
    # the row's page is read-only: no Save, no Delete, and neither is accepted when posted
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert "deletelink" not in html
    assert "Adjust stock" in html
    assert admin_client.post(f"/admin/warehouse/stockitem/{item.pk}/change/",
                             {"sku": "PRD001", "name": "Laptop", "quantity_on_hand": 500,
                              "location": "A-01-01"}).status_code == 403
    assert admin_client.post(f"/admin/warehouse/stockitem/{item.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in listing
    admin_client.post("/admin/warehouse/stockitem/", {
        "action": "delete_selected", "_selected_action": [item.pk], "post": "yes"})
    assert figures() == (10, 3, 7)
    assert StockItem.objects.filter(sku="PRD001").exists()


def test_staff_adjust_stock_on_its_page_through_the_service(catalogue, admin_client, admin_user, followed):
    # given
    reserve(3)
    item = StockItem.objects.get(sku="PRD001")
    url = f"/admin/warehouse/stockitem/{item.pk}/adjust/"
    # when: a count below what is held, then a good count
    refused = admin_client.post(url, {"reason": "counted", "quantity": 1})
    done = admin_client.post(url, {"reason": "counted", "quantity": 12, "note": "found two"})
    # then
    assert refused.status_code == 200
    assert "counted 1, but 3 are held for orders" in refused.content.decode()
    assert done.status_code == 302
    assert done["Location"] == f"/admin/warehouse/stockitem/{item.pk}/change/"
    assert figures() == (12, 3, 9)
    [adjustment] = StockAdjustment.objects.all()
    assert (adjustment.change, adjustment.made_by, adjustment.note) == (2, admin_user.username, "found two")
    assert OutboxMessage.objects.filter(type="stock.adjusted").count() == 1
    history = admin_client.get(f"/admin/warehouse/stockitem/{item.pk}/change/").content.decode()
    assert "found two" in history


def test_only_staff_with_the_adjust_permission_may_adjust(catalogue, client, django_user_model):
    # given: a staff member who may view the stock but not adjust it
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_stockitem"))
    client.force_login(viewer)
    item = StockItem.objects.get(sku="PRD001")
    # when
    response = client.post(f"/admin/warehouse/stockitem/{item.pk}/adjust/", {"reason": "received", "quantity": 5})
    # then
    assert response.status_code == 403
    assert figures() == (10, 0, 10)


def test_the_pick_list_shows_lines_bins_shipping_method_age_and_links(catalogue, admin_client):
    # given
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[RequestedLine(sku="PRD003", quantity=2), RequestedLine(sku="PRD001",
                                                                                                  quantity=1)],
                  recipient="Jaan Tamm", shipping_method="express",
                  shipping_address={"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117",
                                    "country": "Estonia"})
    reservation = Reservation.objects.get(order_id=order_id)
    # when
    listing = admin_client.get("/admin/warehouse/reservation/").content.decode()
    page = admin_client.get(f"/admin/warehouse/reservation/{reservation.pk}/change/").content.decode()
    # then: the list has the lines by bin, the method, the age, and the order's short id linking to it
    assert "1 × PRD001 <small>Laptop</small> @ <strong>A-01-01</strong><br>" in listing
    assert "2 × PRD003 <small>Mechanical keyboard</small> @ <strong>B-01-02</strong>" in listing
    assert '<td class="field-shipping_method">express</td>' in listing
    assert re.search(r'<td class="field-waiting">\d+ s</td>', listing)
    assert (f'<a href="/admin/shop/order/{order_id}/change/" title="{order_id}"><code>{str(order_id)[:8]}</code></a>'
            in listing)
    # the page: the full id, the address written out, the other apps' pages, and no Save
    assert f"<code>{order_id}</code>" in page
    assert "Narva mnt 5, 10117 Tallinn, Estonia" in page
    assert f'href="/admin/transport/shipment/?order_id={order_id}"' in page
    assert f'href="/dashboard/orders/{order_id}/journey/"' in page
    assert 'name="_save"' not in page
