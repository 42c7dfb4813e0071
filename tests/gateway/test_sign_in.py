"""Customers sign in: a password, a token for it, token rotation, the browsable API's login;
password logins (admin, API, browsable API) are limited per account and per address."""

import hashlib
import io
import ipaddress
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from config.authentication import STAFF_REFUSED
from shop.models import Order
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db
PASSWORD = "long-enough-and-odd-42"


@pytest.fixture
def throttle_dir(settings, tmp_path):
    settings.REDIS_URL = None
    settings.API_THROTTLE_DIR = str(tmp_path / "throttle")


@pytest.fixture
def customer_with_password(throttle_dir):
    out = io.StringIO()
    call_command("create_customer", "mari", "--email", "mari@example.com", "--password", PASSWORD, stdout=out)
    return out.getvalue().splitlines()[-1]


def token_post(username, password, **extra):
    return APIClient().post("/api/auth/token/", {"username": username, "password": password}, format="json",
                            **extra)


def test_create_customer_with_a_password_and_exchange_it_for_a_new_token(customer_with_password, catalogue):
    # when
    response = token_post("mari", PASSWORD)
    # then: a new token (each is shown once), which places orders; the printed one is replaced
    assert response.status_code == 200
    new_key = response.json()["token"]
    assert len(new_key) == 64
    assert new_key != customer_with_password
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert client.post("/api/orders/", SEED_ORDER, format="json").status_code == 201
    old = APIClient()
    old.credentials(HTTP_AUTHORIZATION=f"Token {customer_with_password}")
    assert old.get("/api/orders/").status_code == 401


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
    assert AuthToken.objects.count() == 1  # the session login issued no token


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


# --- tokens: hashed, expiring, for customers and drivers only --------------------------------
def test_a_token_is_stored_only_as_its_hash_and_expires(customer_with_password, settings):
    # given: the token create_customer printed
    key = customer_with_password
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    token = AuthToken.objects.get()
    # then: the database holds a SHA-512 digest and the first 15 characters, never the key
    assert token.digest == hashlib.sha512(key.encode()).hexdigest()
    assert token.token_key == key[:15]
    assert key not in {str(value) for value in AuthToken.objects.values_list(flat=True)}
    assert abs(token.expiry - token.created - timedelta(days=30)) < timedelta(seconds=1)
    assert client.get("/api/orders/").status_code == 200
    # when: its expiry has passed
    AuthToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))
    # then: refused, and the expired row is gone
    assert client.get("/api/orders/").status_code == 401
    assert not AuthToken.objects.exists()


def test_staff_get_no_api_token_and_their_tokens_are_refused(throttle_dir):
    # given: a staff member and a superuser with passwords
    User = get_user_model()
    ops = User.objects.create_user("ops", password=PASSWORD, is_staff=True)
    User.objects.create_superuser("root", password=PASSWORD)
    # when: they ask for tokens
    answers = [token_post(name, PASSWORD) for name in ("ops", "root")]
    # then: refused; their session works (the admin, the browsable API)
    assert [(a.status_code, a.json()) for a in answers] == [(403, {"detail": STAFF_REFUSED})] * 2
    assert not AuthToken.objects.exists()
    # and a token that exists for a staff member (made before, or made staff later) is refused
    _instance, key = AuthToken.objects.create(user=ops)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    refused = client.get("/api/orders/")
    assert (refused.status_code, refused.json()) == (401, {"detail": STAFF_REFUSED})
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_customer", "ops", stdout=io.StringIO())


def test_an_existing_plain_token_is_migrated_hashed_and_keeps_working_until_it_expires(transactional_db):
    """Migration shop 0007: DRF's plain keys become knox digests (customers and drivers; staff
    tokens are dropped) and the plain keys are deleted."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    User = get_user_model()
    customer = User.objects.create_user("legacy")
    staff = User.objects.create_user("legacy-ops", is_staff=True)
    executor = MigrationExecutor(connection)
    executor.migrate([("shop", "0006_order_cancel_permission")])
    with connection.cursor() as cursor:  # DRF's authtoken table, as the previous release had it
        cursor.execute("CREATE TABLE IF NOT EXISTS authtoken_token (key varchar(40) PRIMARY KEY, "
                       "created timestamp with time zone NOT NULL, user_id integer NOT NULL UNIQUE)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s), (%s, now(), %s)",
                       ["a" * 40, customer.pk, "b" * 40, staff.pk])
    try:
        # when
        MigrationExecutor(connection).migrate([("shop", "0007_api_tokens_hashed")])
        # then: the customer's key works as it was, expiring in API_TOKEN_TTL_DAYS; no plain key is left
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM authtoken_token")
            assert cursor.fetchone() == (0,)
        (token,) = AuthToken.objects.all()
        assert (token.user_id, token.digest) == (customer.pk, hashlib.sha512(b"a" * 40).hexdigest())
        assert timedelta(days=29, hours=23) < token.expiry - timezone.now() <= timedelta(days=30)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {'a' * 40}")
        assert client.get("/api/orders/").status_code == 200
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS authtoken_token")
