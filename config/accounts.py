"""Accounts that apps create (customers, drivers): the username rule and their API tokens.

Both live here, below the apps, so that every app that makes an account checks usernames as
the admin's user form does and issues tokens one way.
"""

from __future__ import annotations

from typing import cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Field
from knox.models import AuthToken

from config.authentication import STAFF_REFUSED
from config.errors import DomainError, Forbidden


def account_username_check(username: str) -> str:
    """The username as Django stores it (NFKC), if the admin's user form would accept it
    (letters, digits and @.+-_, at most 150) and no account has it; DomainError otherwise."""
    User = get_user_model()
    username = User.normalize_username(username)
    try:
        cast(Field, User._meta.get_field(User.USERNAME_FIELD)).run_validators(username)
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), field="username") from None
    if User.objects.filter(username=username).exists():
        raise DomainError(f"a user named {username!r} already exists", field="username")
    return username


def api_token_issue(*, user: AbstractUser) -> str:
    """A new API token for ``user`` (a customer or a driver), returned this once: only its hash
    is kept. Any earlier token of the user stops working; this one expires after
    ``API_TOKEN_TTL_DAYS``. DomainError for staff, who use the admin and the session."""
    if user.is_staff or user.is_superuser:
        raise Forbidden(STAFF_REFUSED)
    with transaction.atomic():
        AuthToken.objects.filter(user=user).delete()
        _instance, key = AuthToken.objects.create(user=user)
    return key
