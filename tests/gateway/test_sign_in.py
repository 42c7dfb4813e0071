"""Customers sign in: a password, a token for it, token rotation, the browsable API's login;
password logins (admin, API, browsable API) are limited per account and per address."""

import io
import ipaddress
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from shop.models import Order
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db
PASSWORD = "long-enough-and-odd-42"


@pytest.fixture
def throttle_dir(settings, tmp_path):
    settings.API_THROTTLE_DIR = str(tmp_path / "throttle")


@pytest.fixture
def customer_with_password(throttle_dir):
    out = io.StringIO()
    call_command("create_customer", "mari", "--email", "mari@example.com", "--password", PASSWORD, stdout=out)
    return out.getvalue().splitlines()[-1]


def token_post(username, password, **extra):
    return APIClient().post("/api/auth/token/", {"username": username, "password": password}, format="json",
                            **extra)


def test_create_customer_with_a_password_and_exchange_it_for_the_same_token(customer_with_password, catalogue):
    # when
    response = token_post("mari", PASSWORD)
    # then: the token the command printed, and it places orders
    assert response.status_code == 200
    assert response.json() == {"token": customer_with_password}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.post("/api/orders/", SEED_ORDER, format="json").status_code == 201


def test_create_customer_reads_the_password_from_stdin(monkeypatch, throttle_dir):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    call_command("create_customer", "liis", "--password", stdout=io.StringIO())
    assert get_user_model().objects.get(username="liis").check_password(PASSWORD)


def test_a_weak_password_is_refused_and_no_account_is_made():
    with pytest.raises(CommandError, match="too short"):
        call_command("create_customer", "weak", "--password", "abc1", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="weak").exists()


@pytest.mark.parametrize("username", ["bad/name", "has space", "semi;colon", "x" * 151])
def test_a_username_the_admin_would_refuse_is_refused_and_no_account_is_made(username):
    with pytest.raises(CommandError, match="username"):
        call_command("create_customer", username, stdout=io.StringIO())
    assert not get_user_model().objects.filter(username=username).exists()


def test_a_username_is_taken_as_django_normalises_it():
    call_command("create_customer", "\u212bngstr\u00f6m", stdout=io.StringIO())  # ANGSTROM SIGN: NFKC makes it Å
    assert get_user_model().objects.filter(username="\u00c5ngstr\u00f6m").exists()
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_customer", "\u00c5ngstr\u00f6m", stdout=io.StringIO())


def test_without_a_password_there_is_no_password_login(throttle_dir):
    call_command("create_customer", "tokenonly", stdout=io.StringIO())
    assert token_post("tokenonly", "").status_code == 400
    assert token_post("tokenonly", "anything").status_code == 400


@pytest.mark.parametrize("body", [{}, {"username": "mari"}, {"username": ["x"], "password": PASSWORD},
                                  {"username": "mari", "password": "wrong"}])
def test_bad_credentials_are_400_naming_the_problem(customer_with_password, body):
    response = APIClient().post("/api/auth/token/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) <= {"username", "password", "non_field_errors"}


def test_rotation_replaces_the_token_at_once(customer_with_password):
    # given
    old = APIClient()
    old.credentials(HTTP_AUTHORIZATION=f"Token {customer_with_password}")
    # when
    new_key = old.post("/api/auth/token/rotate/").json()["token"]
    # then
    assert new_key != customer_with_password
    assert old.get("/api/orders/").status_code == 401
    new = APIClient()
    new.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert new.get("/api/orders/").status_code == 200
    assert token_post("mari", PASSWORD).json() == {"token": new_key}
    assert APIClient().post("/api/auth/token/rotate/").status_code == 401


def test_the_api_login_locks_an_account_after_five_failures_from_anywhere(customer_with_password, settings):
    # given: five wrong passwords for mari, each from another address (behind a trusted proxy)
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    codes = [token_post("mari", f"wrong-{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(5)]
    # when: the right password, from yet another address
    locked = token_post("mari", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.1")
    # then: the fifth failure reaches the limit and is answered as the lock-out
    assert codes == [400] * 4 + [429]
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    assert "too many failed logins" in locked.json()["detail"]


def test_the_api_login_locks_an_address_after_five_failures_for_any_accounts(customer_with_password):
    codes = [token_post(f"nobody-{i}", "wrong").status_code for i in range(5)]
    assert codes == [400] * 4 + [429]
    assert token_post("mari", PASSWORD).status_code == 429  # the right password, from the same address
    assert token_post("mari", PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 200  # elsewhere: fine


def test_the_lock_ends_after_the_cooloff(customer_with_password):
    for _ in range(5):
        token_post("mari", "wrong")
    assert token_post("mari", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert token_post("mari", PASSWORD).status_code == 200


def test_the_token_endpoint_is_throttled_per_address(customer_with_password, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "login": "3/minute"}
    codes = [token_post("mari", PASSWORD).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_the_admin_login_locks_after_five_wrong_passwords(throttle_dir):
    # given
    get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    client = Client()
    # when
    wrong = [client.post("/admin/login/", {"username": "ops", "password": "nope"}).status_code for _ in range(5)]
    right = client.post("/admin/login/", {"username": "ops", "password": PASSWORD})
    # then: the login form again (200) until the fifth failure, then 429 even with the right password
    assert wrong == [200] * 4 + [429]
    assert right.status_code == 429
    assert client.get("/admin/").status_code == 302  # not logged in


def test_the_admin_login_still_works_below_the_limit(throttle_dir):
    get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    client = Client()
    client.post("/admin/login/", {"username": "ops", "password": "nope"})
    assert client.post("/admin/login/", {"username": "ops", "password": PASSWORD}).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_browsable_api_has_a_login_link_and_login_shows_the_order_input(customer_with_password):
    # given: an anonymous browser
    client = Client()
    page = client.get("/api/orders/", HTTP_ACCEPT="text/html")
    assert page.status_code in (401, 403)
    assert "href='/api-auth/login/?next=/api/orders/'" in page.content.decode()
    # when: the customer logs in through it
    login = client.post("/api-auth/login/", {"username": "mari", "password": PASSWORD, "next": "/api/orders/"})
    assert login.status_code == 302
    html = client.get("/api/orders/", HTTP_ACCEPT="text/html").content.decode()
    # then: the form for placing an order shows what to send (the input), not the output
    form = html[html.index('id="post-generic-content-form"'):]
    for field in ("shipping_address", "product_id", "quantity", "shipping_method", "payment_method"):
        assert f"&quot;{field}&quot;" in form
    assert "&quot;warehouse_confirmation&quot;" not in form
    assert Order.objects.count() == 0
    assert Token.objects.count() == 1


def test_a_locked_api_login_answers_json_and_the_login_page_text(customer_with_password):
    for _ in range(5):
        token_post("mari", "wrong")
    api = token_post("mari", PASSWORD)
    page = Client().post("/api-auth/login/", {"username": "mari", "password": PASSWORD})
    assert (api.status_code, api["Content-Type"], api.json()) == (
        429, "application/json", {"detail": "too many failed logins; try again later"})
    assert (page.status_code, page["Retry-After"]) == (429, "900")
    assert page.content.startswith(b"Too many failed logins")


def test_an_own_login_never_clears_the_failures_for_another_account(customer_with_password):
    """The attack of issue 28: four wrong passwords for the admin, then the attacker's own
    correct login from the same address, over and over."""
    # given: the admin, and the attacker's own account (mari)
    get_user_model().objects.create_user("admin", password=PASSWORD + "-admin", is_staff=True, is_superuser=True)
    browser = Client()
    # when: two rounds of four guesses, each followed by mari's own login through a login form
    rounds = []
    for round_number in range(2):
        guesses = [browser.post("/admin/login/", {"username": "admin", "password": f"guess-{round_number}-{i}"}
                                ).status_code for i in range(4)]
        own = Client().post("/api-auth/login/", {"username": "mari", "password": PASSWORD}).status_code
        rounds.append((guesses, own))
    # then: mari's first login clears nothing of the admin's; the fifth guess locks the address
    # and the admin account, and mari's second login (from the locked address) is refused
    assert rounds == [([200, 200, 200, 200], 302), ([429, 429, 429, 429], 429)]
    assert AccessAttempt.objects.filter(username="admin").get().failures_since_start == 8  # locked ones count too
    right = Client().post("/admin/login/", {"username": "admin", "password": PASSWORD + "-admin"})
    assert right.status_code == 429
    elsewhere = Client(REMOTE_ADDR="198.51.100.7").post("/admin/login/",
                                                       {"username": "admin", "password": PASSWORD + "-admin"})
    assert elsewhere.status_code == 429  # the account is locked wherever the login comes from
    assert token_post("mari", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_a_success_clears_the_failures_of_its_own_account(customer_with_password):
    # given: mari mistypes twice, and someone else fails twice, from the same address
    for password in ("typo-1", "typo-2"):
        token_post("mari", password)
    for i in range(2):
        token_post("someone", f"wrong-{i}")
    # when: mari gets it right
    assert token_post("mari", PASSWORD).status_code == 200
    # then: mari's failures are gone, the other account's stay
    assert list(AccessAttempt.objects.values_list("username", "failures_since_start")) == [("someone", 2)]


def test_every_login_surface_shares_one_lock_out(customer_with_password):
    # given: mari's password guessed wrong on each surface in turn
    codes = [
        token_post("mari", "wrong-1").status_code,
        Client().post("/admin/login/", {"username": "mari", "password": "wrong-2"}).status_code,
        Client().post("/api-auth/login/", {"username": "mari", "password": "wrong-3"}).status_code,
        token_post("mari", "wrong-4").status_code,
        Client().post("/api-auth/login/", {"username": "mari", "password": "wrong-5"}).status_code,
    ]
    # then: the fifth failure, wherever it came, locks mari out of all of them
    assert codes == [400, 200, 200, 400, 429]
    assert token_post("mari", PASSWORD, REMOTE_ADDR="198.51.100.8").status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.8").post(
        "/api-auth/login/", {"username": "mari", "password": PASSWORD}).status_code == 429


def test_the_login_forms_spend_the_token_endpoints_request_budget(customer_with_password, settings):
    # given: a budget of three login attempts a minute per address
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "login": "3/minute"}
    # when: one attempt on each surface, then a fourth on a form
    codes = [token_post("mari", PASSWORD).status_code,
             Client().post("/api-auth/login/", {"username": "mari", "password": PASSWORD}).status_code,
             Client().post("/admin/login/", {"username": "mari", "password": PASSWORD}).status_code]
    fourth = Client().post("/admin/login/", {"username": "mari", "password": PASSWORD})
    # then: the fourth is refused before any password is checked; elsewhere the budget is whole
    assert codes == [200, 302, 200]  # mari is no staff: the admin shows its form again
    assert fourth.status_code == 429
    assert 1 <= int(fourth["Retry-After"]) <= 60
    assert fourth.content.startswith(b"Too many login attempts from this address")
    assert token_post("mari", PASSWORD).status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.9").post(
        "/api-auth/login/", {"username": "mari", "password": PASSWORD}).status_code == 302
