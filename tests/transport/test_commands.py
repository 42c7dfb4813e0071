"""Transport's commands performed by people: the admin actions and the driver API."""

import io
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from transport.api import CanRecordShipmentStage
from transport.models import Driver, Shipment, TrackingEvent, Vehicle
from transport.services import shipment_advance, shipment_create

pytestmark = pytest.mark.django_db

LIFECYCLE = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
SHIPMENTS_ADMIN = "admin:transport_shipment_changelist"
VEHICLES_ADMIN = "admin:transport_vehicle_changelist"


def create() -> Shipment:
    return shipment_create(order_id=uuid.uuid4(), recipient="Mari Maasikas",
                           shipping_address={"street": "Rüütli 1", "city": "Tartu"}, shipping_method="standard")


def advance(shipment: Shipment, stages: list[str]) -> None:
    for stage in stages:
        shipment_advance(shipment_id=shipment.id, to_status=stage)


def stage_url(shipment_id: str) -> str:
    return f"/api/shipments/{shipment_id}/stage/"


def stages_of(shipment: Shipment) -> list[str]:
    return list(TrackingEvent.objects.filter(shipment=shipment).values_list("status", flat=True))


def announced(shipment: Shipment) -> list[str]:
    rows = OutboxMessage.objects.filter(type="shipment.status_changed", correlation_id=str(shipment.order_id))
    return [row.payload["status"] for row in rows.order_by("id")]


def status_of(shipment: Shipment) -> str:
    return Shipment.objects.values_list("status", flat=True).get(pk=shipment.pk)


def admin_messages(response) -> list[str]:
    """The messages the changelist shows after the action (and so takes off the session)."""
    return [str(m) for m in response.context["messages"]]


def run_action(client, changelist: str, action: str, pks: list):
    """POST the action as the changelist's form does, then follow the redirect back to it."""
    return client.post(reverse(changelist), {"action": action, "_selected_action": [str(pk) for pk in pks]},
                       follow=True)


def record_permission() -> Permission:
    return Permission.objects.get(codename="record_shipment_stage", content_type__app_label="transport")


def driver_token(username: str, vehicle: str) -> str:
    out = io.StringIO()
    call_command("create_driver", username, "--vehicle", vehicle, stdout=out)
    return out.getvalue().splitlines()[-1]


def token_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def staff_client(django_user_model):
    """A dispatcher: staff with the permission to record stages, signed in (the session)."""
    dispatcher = django_user_model.objects.create_user("dispatcher", is_staff=True)
    dispatcher.user_permissions.add(record_permission())
    client = APIClient()
    client.force_login(dispatcher)
    return client


@pytest.fixture
def driver_client(catalogue):
    """The driver of VEH001, the vehicle the first shipment gets."""
    return token_client(driver_token("driver", "VEH001"))


# --- admin: record the next stage -------------------------------------------------------
def test_admin_records_the_next_stage_of_each_selected_shipment(catalogue, admin_client):
    # given: three vehicles, so the fourth shipment waits
    assigned, in_transit, _, waiting = create(), create(), create(), create()
    advance(in_transit, ["picked_up", "in_transit"])
    # when
    response = run_action(admin_client, SHIPMENTS_ADMIN, "record_next_stage", [assigned.pk, in_transit.pk, waiting.pk])
    # then
    assert response.redirect_chain == [(reverse(SHIPMENTS_ADMIN), 302)]
    assert (status_of(assigned), status_of(in_transit), status_of(waiting)) == (
        "picked_up", "out_for_delivery", "awaiting_vehicle")
    assert stages_of(in_transit) == ["vehicle_assigned", "picked_up", "in_transit", "out_for_delivery"]
    assert announced(assigned) == ["vehicle_assigned", "picked_up"]
    assert announced(waiting) == ["awaiting_vehicle"]
    assert admin_messages(response) == [
        "2 shipments moved to the next stage (1 to out_for_delivery, 1 to picked_up).",
        "1 shipment without a next stage to record, left as they were (1 awaiting_vehicle).",
    ]


def test_admin_next_stage_delivers_and_frees_the_vehicle_then_changes_nothing(catalogue, admin_client):
    # given: a shipment out for delivery
    shipment = create()
    advance(shipment, ["picked_up", "in_transit", "out_for_delivery"])
    # when: the action twice
    first = run_action(admin_client, SHIPMENTS_ADMIN, "record_next_stage", [shipment.pk])
    second = run_action(admin_client, SHIPMENTS_ADMIN, "record_next_stage", [shipment.pk])
    # then
    shipment.refresh_from_db()
    assert shipment.status == "delivered"
    assert shipment.delivered_at is not None
    assert Vehicle.objects.get(pk=shipment.vehicle_id).status == "available"
    assert stages_of(shipment) == ["vehicle_assigned", *LIFECYCLE]
    assert announced(shipment) == ["vehicle_assigned", *LIFECYCLE]
    assert admin_messages(first) == ["1 shipment moved to the next stage (1 to delivered)."]
    assert admin_messages(second) == [
        "1 shipment without a next stage to record, left as they were (1 delivered)."]


def test_admin_next_stage_needs_the_stage_permission(catalogue, client, django_user_model):
    # given: two staff users who may look at shipments; only one may record stages
    view = Permission.objects.get(codename="view_shipment", content_type__app_label="transport")
    record = Permission.objects.get(codename="record_shipment_stage", content_type__app_label="transport")
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(view)
    dispatcher = django_user_model.objects.create_user("dispatcher", is_staff=True)
    dispatcher.user_permissions.add(view, record)
    shipment = create()
    # when: the clerk tries
    client.force_login(clerk)
    refused = run_action(client, SHIPMENTS_ADMIN, "record_next_stage", [shipment.pk])
    # then: the action is not offered to them (the changelist shows no actions), and nothing changed
    assert refused.redirect_chain == []
    assert refused.context["action_form"] is None
    assert admin_messages(refused) == []
    assert status_of(shipment) == "vehicle_assigned"
    # when: the dispatcher does
    client.force_login(dispatcher)
    recorded = run_action(client, SHIPMENTS_ADMIN, "record_next_stage", [shipment.pk])
    # then
    assert admin_messages(recorded) == ["1 shipment moved to the next stage (1 to picked_up)."]
    assert status_of(shipment) == "picked_up"


# --- admin: dispatch free vehicles --------------------------------------------------------
def test_admin_dispatch_gives_a_free_vehicle_to_the_longest_waiting_shipment(catalogue, admin_client):
    # given: one vehicle in maintenance, so two of four shipments wait; then it comes back
    spare = Vehicle.objects.get(code="VEH003")
    Vehicle.objects.filter(pk=spare.pk).update(status="maintenance")
    create(), create()
    first_waiting, second_waiting = create(), create()
    assert (first_waiting.status, second_waiting.status) == ("awaiting_vehicle", "awaiting_vehicle")
    Vehicle.objects.filter(pk=spare.pk).update(status="available")
    # when
    response = run_action(admin_client, VEHICLES_ADMIN, "dispatch_free_vehicles", [spare.pk])
    # then
    first_waiting.refresh_from_db()
    assert (first_waiting.status, first_waiting.vehicle_id) == ("vehicle_assigned", spare.pk)
    assert status_of(second_waiting) == "awaiting_vehicle"
    assert Vehicle.objects.get(pk=spare.pk).status == "busy"
    assert announced(first_waiting) == ["awaiting_vehicle", "vehicle_assigned"]
    assert admin_messages(response) == [
        "1 vehicle dispatched to waiting shipments (now 0 free vehicles, 1 shipment waiting)."]


def test_admin_dispatch_with_no_free_vehicle_changes_nothing(catalogue, admin_client):
    # given: every vehicle busy, one shipment waiting
    create(), create(), create()
    waiting = create()
    # when
    response = run_action(admin_client, VEHICLES_ADMIN, "dispatch_free_vehicles",
                          list(Vehicle.objects.values_list("pk", flat=True)))
    # then
    assert status_of(waiting) == "awaiting_vehicle"
    assert announced(waiting) == ["awaiting_vehicle"]
    assert admin_messages(response) == ["Nothing to dispatch (now 0 free vehicles, 1 shipment waiting)."]


# --- driver API ---------------------------------------------------------------------------
def test_staff_records_a_stage(catalogue, staff_client):
    # given
    shipment = create()
    code = shipment.vehicle.code
    # when
    response = staff_client.post(stage_url(shipment.id), {"status": "picked_up"}, format="json")
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["shipment_id"], body["status"]) == (shipment.id, "picked_up")
    assert [(e["status"], e["message"], e["vehicle_code"]) for e in body["events"]] == [
        ("vehicle_assigned", f"Vehicle {code} assigned", code),
        ("picked_up", f"Picked up from the warehouse by {code}", code),
    ]
    assert status_of(shipment) == "picked_up"
    assert announced(shipment) == ["vehicle_assigned", "picked_up"]


def test_a_driver_with_the_permission_drives_a_shipment_to_delivery(catalogue, driver_client):
    # given
    shipment = create()
    # when: every stage in turn
    answers = [driver_client.post(stage_url(shipment.id), {"status": stage}, format="json") for stage in LIFECYCLE]
    # then
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert [a.json()["status"] for a in answers] == LIFECYCLE
    assert [e["status"] for e in answers[-1].json()["events"]] == ["vehicle_assigned", *LIFECYCLE]
    assert Vehicle.objects.get(pk=shipment.vehicle_id).status == "available"
    assert announced(shipment) == ["vehicle_assigned", *LIFECYCLE]


def test_repeated_stages_change_nothing(catalogue, driver_client):
    # given: a shipment driven to delivery
    shipment = create()
    for stage in LIFECYCLE:
        assert driver_client.post(stage_url(shipment.id), {"status": stage}, format="json").status_code == 200
    # when: every stage sent again
    repeats = [driver_client.post(stage_url(shipment.id), {"status": stage}, format="json") for stage in LIFECYCLE]
    # then: earlier stages refused, the one it is at answered again; one event and announcement per stage
    assert [r.status_code for r in repeats] == [409, 409, 409, 200]
    assert repeats[0].json() == {
        "detail": "the shipment is delivered; no stage follows"}
    assert repeats[-1].json()["status"] == "delivered"
    assert stages_of(shipment) == ["vehicle_assigned", *LIFECYCLE]
    assert announced(shipment) == ["vehicle_assigned", *LIFECYCLE]


def test_the_same_stage_twice_answers_the_same_and_changes_nothing(catalogue, driver_client):
    # given
    shipment = create()
    first = driver_client.post(stage_url(shipment.id), {"status": "picked_up"}, format="json")
    # when: a retry (the answer was lost)
    again = driver_client.post(stage_url(shipment.id), {"status": "picked_up"}, format="json")
    # then
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert stages_of(shipment) == ["vehicle_assigned", "picked_up"]
    assert announced(shipment) == ["vehicle_assigned", "picked_up"]


def test_a_stage_out_of_order_is_a_conflict_and_changes_nothing(catalogue, staff_client):
    # given
    shipment = create()
    # when: a stage that skips two
    response = staff_client.post(stage_url(shipment.id), {"status": "out_for_delivery"}, format="json")
    # then
    assert response.status_code == 409
    assert response.json() == {
        "detail": "the shipment is vehicle_assigned; the next stage to record is picked_up, not out_for_delivery"}
    assert status_of(shipment) == "vehicle_assigned"
    assert stages_of(shipment) == ["vehicle_assigned"]
    assert announced(shipment) == ["vehicle_assigned"]


def test_no_stage_before_a_vehicle_is_assigned(catalogue, staff_client):
    # given: three vehicles, so the fourth shipment waits
    create(), create(), create()
    waiting = create()
    # when
    response = staff_client.post(stage_url(waiting.id), {"status": "picked_up"}, format="json")
    # then
    assert response.status_code == 409
    assert response.json() == {
        "detail": "the shipment is awaiting_vehicle: no stage can be recorded before a vehicle is assigned"}
    assert status_of(waiting) == "awaiting_vehicle"
    assert announced(waiting) == ["awaiting_vehicle"]


def test_a_customer_without_the_permission_is_forbidden(catalogue, customer_client):
    # given
    shipment = create()
    # when
    response = customer_client.post(stage_url(shipment.id), {"status": "picked_up"}, format="json")
    # then
    assert response.status_code == 403
    assert response.json() == {"detail": CanRecordShipmentStage.message}
    assert status_of(shipment) == "vehicle_assigned"
    assert announced(shipment) == ["vehicle_assigned"]


def test_an_anonymous_caller_must_authenticate(catalogue):
    # given
    shipment = create()
    # when
    response = APIClient().post(stage_url(shipment.id), {"status": "picked_up"}, format="json")
    # then
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert status_of(shipment) == "vehicle_assigned"


@pytest.mark.parametrize("shipment_id", [
    "SHP-00000000000000000000",
    "SHP-" + "A" * 5000,
    "SHP-%E2%80%AE%C3%BC",
    "'; DROP TABLE transport_shipment; --",
], ids=["unknown", "very long", "unicode", "sql"])
def test_an_unknown_shipment_is_not_found(catalogue, staff_client, shipment_id):
    # when
    response = staff_client.post(stage_url(shipment_id), {"status": "picked_up"}, format="json")
    # then
    assert response.status_code == 404
    assert response.json() == {"detail": "shipment not found"}


@pytest.mark.parametrize("shipment_id", ["SHP-%00%01", "%0A%0D%1B"], ids=["NUL and control", "newline and escape"])
def test_a_shipment_id_with_control_characters_is_refused_at_the_gateway(catalogue, staff_client, shipment_id):
    response = staff_client.post(stage_url(shipment_id), {"status": "picked_up"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "The path contains a control character."}


@pytest.mark.parametrize(("body", "error"), [
    ({"status": "teleported"}, '"teleported" is not a valid choice.'),
    ({"status": "vehicle_assigned"}, '"vehicle_assigned" is not a valid choice.'),
    ({"status": ""}, '"" is not a valid choice.'),
    ({"status": None}, "This field may not be null."),
    ({"status": ["picked_up"]}, '"[\'picked_up\']" is not a valid choice.'),
    ({"status": "picked_up\x00"}, '"picked_up\x00" is not a valid choice.'),
    ({}, "This field is required."),
], ids=["unknown", "not driveable", "blank", "null", "list", "NUL", "missing"])
def test_a_bad_status_is_a_400_naming_the_field(catalogue, staff_client, body, error):
    # given
    shipment = create()
    # when
    response = staff_client.post(stage_url(shipment.id), body, format="json")
    # then
    assert response.status_code == 400
    assert response.json() == {"status": [error]}
    assert status_of(shipment) == "vehicle_assigned"
    assert announced(shipment) == ["vehicle_assigned"]


def test_a_body_that_is_not_an_object_is_a_400(catalogue, staff_client):
    # given
    shipment = create()
    # when
    response = staff_client.post(stage_url(shipment.id), ["picked_up"], format="json")
    # then
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
    assert status_of(shipment) == "vehicle_assigned"


def test_the_stage_endpoint_is_in_the_openapi_schema(db):
    # when
    response = APIClient().get("/api/schema/", {"format": "json"})
    # then
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/shipments/{shipment_id}/stage/"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "404", "409"}
    schemas = response.json()["components"]["schemas"]
    assert schemas["ShipmentStageInRequest"]["properties"]["status"] == {"$ref": "#/components/schemas/ShipmentStage"}
    assert schemas["ShipmentStage"]["enum"] == LIFECYCLE
    assert set(schemas["ShipmentStageOut"]["properties"]) == {"shipment_id", "status", "events"}


# --- admin: what messages wrote is read-only ---------------------------------------------
def test_tracking_events_are_read_only_in_the_admin(catalogue, admin_client):
    # given: a shipment with its first tracking event
    shipment = create()
    event = TrackingEvent.objects.get(shipment=shipment)
    change_url = reverse("admin:transport_trackingevent_change", args=[event.pk])
    # when
    listed = admin_client.get(reverse("admin:transport_trackingevent_changelist"))
    shown = admin_client.get(change_url)
    added = admin_client.get(reverse("admin:transport_trackingevent_add"))
    edited = admin_client.post(change_url, {"shipment": shipment.pk, "status": "delivered", "message": "forged",
                                            "vehicle_code": "", "timestamp_0": "2025-01-01", "timestamp_1": "00:00"})
    deleted = admin_client.post(reverse("admin:transport_trackingevent_delete", args=[event.pk]), {"post": "yes"})
    # then: staff may look, not write
    assert (listed.status_code, shown.status_code) == (200, 200)
    assert not shown.context["has_change_permission"]
    assert (added.status_code, edited.status_code, deleted.status_code) == (403, 403, 403)
    assert list(TrackingEvent.objects.filter(shipment=shipment).values_list("status", "message")) == [
        ("vehicle_assigned", f"Vehicle {shipment.vehicle.code} assigned")]


def test_shipments_cannot_be_added_or_deleted_in_the_admin(catalogue, admin_client):
    # given
    shipment = create()
    # when
    added = admin_client.get(reverse("admin:transport_shipment_add"))
    deleted = admin_client.post(reverse("admin:transport_shipment_delete", args=[shipment.pk]), {"post": "yes"})
    bulk = run_action(admin_client, SHIPMENTS_ADMIN, "delete_selected", [shipment.pk])
    # then
    assert (added.status_code, deleted.status_code) == (403, 403)
    assert admin_messages(bulk) == ["No action selected."]
    assert status_of(shipment) == "vehicle_assigned"


# --- drivers bound to vehicles ------------------------------------------------------------
def test_create_driver_binds_the_driver_to_the_vehicle_and_prints_the_token_last(catalogue):
    # when
    out = io.StringIO()
    call_command("create_driver", "juhan", "--vehicle", "VEH002", stdout=out)
    # then
    lines = out.getvalue().splitlines()
    driver = Driver.objects.select_related("user", "vehicle").get()
    assert lines[0] == "driver juhan created, driving VEH002"
    assert (driver.user.username, driver.vehicle.code) == ("juhan", "VEH002")
    assert driver.user.has_perm("transport.record_shipment_stage")
    assert not driver.user.has_usable_password()
    assert not driver.user.is_staff
    assert token_client(lines[-1]).post(stage_url("SHP-00000000000000000000"), {"status": "picked_up"},
                                        format="json").status_code == 404


@pytest.mark.parametrize(("username", "vehicle", "error"), [
    ("juhan", "VEH999", "no vehicle 'VEH999' (known: VEH001, VEH002, VEH003)"),
    ("bad/name", "VEH001", "Enter a valid username."),
    ("has space", "VEH001", "Enter a valid username."),
    ("", "VEH001", "username must be 1-150 characters"),
], ids=["unknown vehicle", "slash", "space", "empty"])
def test_create_driver_refuses_unknown_vehicles_and_bad_usernames(catalogue, django_user_model, username, vehicle,
                                                                  error):
    with pytest.raises(CommandError) as refused:
        call_command("create_driver", username, "--vehicle", vehicle, stdout=io.StringIO())
    assert str(refused.value).startswith(error)
    assert not django_user_model.objects.exists()


def test_a_driver_records_only_their_vehicles_shipments(catalogue, driver_client):
    # given: the first shipment on VEH001 (the driver's), the second on VEH002
    own, other = create(), create()
    assert (own.vehicle.code, other.vehicle.code) == ("VEH001", "VEH002")
    # when: the driver tries the other vehicle's shipment, every stage
    refused = [driver_client.post(stage_url(other.id), {"status": stage}, format="json") for stage in LIFECYCLE]
    recorded = driver_client.post(stage_url(own.id), {"status": "picked_up"}, format="json")
    # then: as if it did not exist; nothing changed there
    assert [(r.status_code, r.json()) for r in refused] == [(404, {"detail": "shipment not found"})] * 4
    assert (status_of(other), announced(other)) == ("vehicle_assigned", ["vehicle_assigned"])
    assert recorded.status_code == 200
    assert Vehicle.objects.get(code="VEH002").status == "busy"


def test_the_admin_shows_and_changes_a_drivers_vehicle(catalogue, admin_client, driver_client):
    # given: shipments on VEH001 and VEH002; the driver drives VEH001
    first, second = create(), create()
    driver = Driver.objects.get()
    # when: the admin moves the driver to VEH002
    listing = admin_client.get(reverse("admin:transport_driver_changelist")).content.decode()
    vehicles = admin_client.get(reverse(VEHICLES_ADMIN)).content.decode()
    changed = admin_client.post(reverse("admin:transport_driver_change", args=[driver.pk]),
                                {"vehicle": Vehicle.objects.get(code="VEH002").pk})
    # then: the lists show who drives what, and the driver now records VEH002's shipments only
    assert '<td class="field-vehicle nowrap">VEH001 (van, busy)</td>' in listing
    assert '<td class="field-drivers">driver</td>' in vehicles
    assert changed.status_code == 302
    assert Driver.objects.get().vehicle.code == "VEH002"
    assert driver_client.post(stage_url(first.id), {"status": "picked_up"}, format="json").status_code == 404
    assert driver_client.post(stage_url(second.id), {"status": "picked_up"}, format="json").status_code == 200


def test_the_staff_flag_alone_records_no_stage(catalogue, django_user_model):
    # given: staff without the permission, and a user with it who drives no vehicle and is no staff
    flag_only = django_user_model.objects.create_user("ops", is_staff=True)
    no_vehicle = django_user_model.objects.create_user("walker")
    no_vehicle.user_permissions.add(record_permission())
    shipment = create()
    answers = []
    for user in (flag_only, no_vehicle):
        client = APIClient()
        client.force_login(user)
        answers.append(client.post(stage_url(shipment.id), {"status": "picked_up"}, format="json"))
    # then
    assert [(a.status_code, a.json()) for a in answers] == [(403, {"detail": CanRecordShipmentStage.message})] * 2
    assert status_of(shipment) == "vehicle_assigned"
