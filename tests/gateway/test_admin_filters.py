"""Every list filter and date hierarchy of every model admin, the project's and the libraries',
answers a hostile value with a page or Django's "invalid filter" redirect (``?e=1``), never a
500. Before, ``?created_at__year=2147483648`` was an OverflowError on the dead letters and the
audit runs, and ``?created_at__year=9999`` a ValueError."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory

pytestmark = pytest.mark.django_db

# out of every range, a date at the edge, a non-ASCII number (int() takes it), a long one
HOSTILE = ["2147483648", "9999-12-31", "\u0661\u0669\u0669\u0669", "1" * 400]
# year, month, day: each past what a date holds, or right at its edge
DATE_EDGES = [("2147483648", None, None), ("9999", None, None), ("9999", "12", None), ("9999", "12", "31"),
              ("1", "1", "1"), ("2024", "13", None), ("2024", "2", "30"), ("-5", None, None),
              ("2024", "1", "99999999999")]


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def filter_parameters(staff) -> list[tuple[str, str | None]]:
    """(changelist URL, query parameter) for every list filter of every model admin."""
    found = []
    for model, model_admin in admin.site._registry.items():
        request = RequestFactory().get("/")
        request.user = staff
        changelist = model_admin.get_changelist_instance(request)
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for spec in changelist.filter_specs:
            found += [(url, parameter) for parameter in spec.expected_parameters()]
    return found


def test_every_list_filter_answers_a_hostile_value_without_a_500(staff, staff_client):
    parameters = filter_parameters(staff)
    assert len(parameters) >= 40  # every model admin's, the libraries' among them
    answers = {}
    for url, parameter in parameters:
        for value in HOSTILE:
            response = staff_client.get(url, {parameter: value})
            answers[(url, parameter, value)] = response.status_code
    assert {key: code for key, code in answers.items() if code not in (200, 302)} == {}


def test_every_date_hierarchy_refuses_dates_past_what_a_date_holds(staff_client):
    hierarchies = [(f"/admin/{model._meta.app_label}/{model._meta.model_name}/", model_admin.date_hierarchy)
                   for model, model_admin in admin.site._registry.items() if model_admin.date_hierarchy]
    assert len(hierarchies) >= 2  # the dead letters and the audit runs among them
    answers = {}
    for url, field in hierarchies:
        for year, month, day in DATE_EDGES:
            query = {f"{field}__year": year, **({f"{field}__month": month} if month else {}),
                     **({f"{field}__day": day} if day else {})}
            response = staff_client.get(url, query)
            answers[(url, year, month, day)] = (response.status_code, response.get("Location", ""))
    assert {key: answer for key, answer in answers.items() if answer[0] not in (200, 302)} == {}
    assert answers[("/admin/messaging/deadletter/", "2147483648", None, None)] == (
        302, f"/admin/messaging/deadletter/?{ERROR_FLAG}=1")
    assert answers[("/admin/messaging/deadletter/", "1", "1", "1")][0] == 200
