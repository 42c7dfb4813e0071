"""Accounts that apps create (customers, drivers), their sign-in and their API tokens.

A room below the apps: the shop makes customers and transport makes drivers through it, so every
account's username is checked as the admin's user form checks it, every password as
AUTH_PASSWORD_VALIDATORS say, and tokens are issued one way. It takes plain values (a username,
a password, the client's address), never a request: the API view reads those from its request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Field
from django.http import HttpRequest
from knox.models import AuthToken

from accounts.lockout import LOGIN_LOCKED
from config.authentication import STAFF_REFUSED
from config.errors import DomainError, Forbidden, TooManyAttempts

if TYPE_CHECKING:
    from django.contrib.auth.models import User as AuthUser  # get_user_model() to the stubs (User is its local name)


def account_username_check(username: str) -> str:
    """The username as Django stores it (NFKC), if the admin's user form would accept it
    (letters, digits and @.+-_, at most 150) and no account has it; DomainError otherwise."""
    User = get_user_model()
    username = User.normalize_username(username)
    try:
        cast(Field, User._meta.get_field(User.USERNAME_FIELD)).run_validators(username)  # a concrete column
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), field="username") from None
    if User.objects.filter(username=username).exists():
        raise DomainError(f"a user named {username!r} already exists", field="username")
    return username


def account_create(*, username: str, email: str = "", password: str | None = None) -> AuthUser:
    """A new user account. Without a ``password`` it cannot sign in (API token only); with one,
    the password must pass AUTH_PASSWORD_VALIDATORS (DomainError naming ``password``)."""
    User = get_user_model()
    username = account_username_check(username)
    user = User(username=username, email=User.objects.normalize_email(email))
    if password is None:
        user.set_unusable_password()
    else:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise DomainError(" ".join(exc.messages), field="password") from None
        user.set_password(password)
    user.save()
    return user


def api_token_issue(*, user: AbstractUser) -> str:
    """A new API token for ``user`` (a customer or a driver), returned this once: only its hash
    is kept. Any earlier token of the user stops working; this one expires after
    ``API_TOKEN_TTL_DAYS``. Forbidden for staff, who use the admin and the session."""
    if user.is_staff or user.is_superuser:
        raise Forbidden(STAFF_REFUSED)
    with transaction.atomic():
        AuthToken.objects.filter(user=user).delete()
        _instance, key = AuthToken.objects.create(user=user)
    return key


def _lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def _sign_in_request(*, client_address: str, user_agent: str) -> HttpRequest:
    """The request django-axes reads a sign-in from: only the client's address and user agent.

    axes' API takes a request; these are the two things it reads from one (through
    AXES_CLIENT_IP_CALLABLE, which finds ``client_address`` as the peer itself).
    """
    request = HttpRequest()
    request.method = "POST"
    request.META.update(REMOTE_ADDR=client_address, HTTP_USER_AGENT=user_agent)
    return request


def token_obtain(*, username: str, password: str, client_address: str, user_agent: str = "") -> str:
    """A new API token for the account with this username and password, shown this once (its
    earlier token stops working). Customers and drivers only: staff are refused (Forbidden)
    and use the admin and the session.

    The sign-in goes through django-axes (settings "sign-in"): an account or client address
    that is locked out is refused with TooManyAttempts before the password is even checked,
    and every failure counts towards a lock-out.
    """
    request = _sign_in_request(client_address=client_address, user_agent=user_agent)
    if AxesProxyHandler.is_locked(request, {"username": username}):
        raise TooManyAttempts(LOGIN_LOCKED, retry_after=_lockout_seconds())
    user = authenticate(request, username=username, password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):  # this failure reached the limit
            raise TooManyAttempts(LOGIN_LOCKED, retry_after=_lockout_seconds())
        raise DomainError("unable to log in with these credentials", field="non_field_errors")
    # a login like the forms' (no session): django-axes clears this account's failures, and
    # last_login is set
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    return api_token_issue(user=user)


def token_rotate(*, user: AbstractUser) -> str:
    """Replace the user's API token with a new one: the old key stops working at once."""
    return api_token_issue(user=user)
