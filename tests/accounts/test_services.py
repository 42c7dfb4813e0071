"""Accounts take plain values: a username, a password, the client's address; never a request."""

import pytest
from django.conf import settings

from accounts.lockout import LOGIN_LOCKED
from accounts.services import account_create, token_obtain
from config.errors import DomainError, TooManyAttempts

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 7"


def test_a_right_password_gets_a_token_that_authenticates():
    # given
    account_create(username="mari", email="mari@example.com", password=PASSWORD)
    # when
    key = token_obtain(username="mari", password=PASSWORD, client_address="203.0.113.7")
    # then
    assert len(key) == 64


def test_failures_lock_the_account_wherever_its_next_login_comes_from():
    # given: as many wrong passwords from one address as the limit allows
    account_create(username="jaan", password=PASSWORD)
    outcomes = []
    for _ in range(settings.AXES_FAILURE_LIMIT):
        with pytest.raises(DomainError) as failed:
            token_obtain(username="jaan", password="wrong", client_address="203.0.113.7")
        outcomes.append(type(failed.value).__name__)
    # when: the right password, from another address
    with pytest.raises(TooManyAttempts) as locked:
        token_obtain(username="jaan", password=PASSWORD, client_address="198.51.100.9")
    # then: the last failure reached the limit; the lock-out is refused with its cool-off
    assert outcomes == ["DomainError"] * (settings.AXES_FAILURE_LIMIT - 1) + ["TooManyAttempts"]
    assert (str(locked.value), locked.value.retry_after) == (LOGIN_LOCKED, 15 * 60)


def test_another_account_signs_in_from_another_address_meanwhile():
    # given: jaan's account locked out from 203.0.113.7
    account_create(username="jaan", password=PASSWORD)
    account_create(username="mari", password=PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        with pytest.raises(DomainError):
            token_obtain(username="jaan", password="wrong", client_address="203.0.113.7")
    # when
    key = token_obtain(username="mari", password=PASSWORD, client_address="198.51.100.9")
    # then
    assert len(key) == 64
