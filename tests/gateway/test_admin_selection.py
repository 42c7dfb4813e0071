"""Every admin action, the project's and the libraries', runs only on ids of its model: a selected
value that is none (not a number, not a UUID, out of range, a NUL) is refused with a 400 and
nothing is done. Before, Django filtered by it as it came and every action answered 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.test import Client, RequestFactory
from django.utils import timezone

from messaging.models import OutboxMessage
from shop.models import Order
from transport.models import Vehicle

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def every_action(staff) -> list[tuple[str, str, type[models.Model]]]:
    request = RequestFactory().get("/")
    request.user = staff
    return [(f"/admin/{model._meta.app_label}/{model._meta.model_name}/", action, model)
            for model, model_admin in admin.site._registry.items() for action in model_admin.get_actions(request)]


def not_ids(model: type[models.Model]) -> list[str]:
    """Values that are no id of ``model``."""
    values = ["\x00", "1\x00"]
    if isinstance(model._meta.pk, models.UUIDField):
        values += ["not-a-uuid", "1" * 40]
    elif isinstance(model._meta.pk, models.AutoField | models.BigAutoField | models.IntegerField):
        values += ["not-a-number", "9" * 40, "1.5"]
    return values


def test_every_action_refuses_a_selection_that_is_no_id_of_its_model(staff, staff_client):
    actions = every_action(staff)
    assert len(actions) >= 15  # the project's and django-q2's, django-axes's and auth's
    for changelist, action, model in actions:
        for value in not_ids(model):
            for confirmed in ({}, {"post": "yes"}):
                response = staff_client.post(changelist, {"action": action, "_selected_action": [value],
                                                          "index": "0", **confirmed})
                assert response.status_code == 400, (changelist, action, repr(value), response.status_code)
                assert b"is not the id of any" in response.content
                assert b"nothing was done" in response.content


def test_a_bad_value_among_good_ones_stops_the_whole_action(staff_client):
    vehicles = list(Vehicle.objects.bulk_create(
        [Vehicle(code=f"VEH{i}", type="van", location="Tallinn") for i in range(3)]))
    response = staff_client.post("/admin/transport/vehicle/", {
        "action": "delete_selected", "_selected_action": [str(v.pk) for v in vehicles] + ["9" * 40],
        "index": "0", "post": "yes"})
    assert response.status_code == 400
    assert response.content == f"'{'9' * 40}' is not the id of any vehicle: nothing was done.\n".encode()
    assert Vehicle.objects.count() == 3
    assert not Order.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_a_good_selection_still_runs_its_action(staff_client):
    vehicles = list(Vehicle.objects.bulk_create(
        [Vehicle(code=f"VEH{i}", type="van", location="Tallinn") for i in range(3)]))
    response = staff_client.post("/admin/transport/vehicle/", {
        "action": "delete_selected", "_selected_action": [str(vehicles[0].pk)], "index": "0", "post": "yes"})
    assert response.status_code == 302
    assert list(Vehicle.objects.values_list("code", flat=True).order_by("code")) == ["VEH1", "VEH2"]


def test_django_axes_clean_up_of_expired_attempts_runs(staff_client, settings):
    # django-axes 8.3's action read a time axes sets only while it checks a login: 500 on every call
    old = AccessAttempt.objects.create(username="someone", ip_address="10.0.0.1", user_agent="x", path_info="/",
                                       failures_since_start=1, get_data="", post_data="")
    AccessAttempt.objects.filter(pk=old.pk).update(attempt_time=timezone.now() - timedelta(days=30))
    response = staff_client.post("/admin/axes/accessattempt/", {
        "action": "cleanup_expired_attempts", "_selected_action": [str(old.pk)], "index": "0"}, follow=True)
    assert response.status_code == 200
    assert b"expired access attempts" in response.content
    assert not AccessAttempt.objects.filter(pk=old.pk).exists()
