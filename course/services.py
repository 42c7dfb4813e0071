"""The course's one write of its own: the guest customer its orders belong to.

The course's client sends no token. Its orders are placed by the shop's own service
(``shop.services.order_place``) for one customer, made on first use; the course's API reads
back only that customer's orders.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from shop.models import Customer
from shop.services import customer_for_user

GUEST_USERNAME = "course-guest"
GUEST_NAME = "The course's guest (make tutorial)"


def guest_customer_get_or_create() -> Customer:
    """The course's guest customer: no password (it cannot sign in), no token, not staff.

    Safe when the first orders arrive at once: ``get_or_create`` takes the row a concurrent
    request inserted.
    """
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username=GUEST_USERNAME, defaults={"password": make_password(None), "first_name": GUEST_NAME})
    return customer_for_user(user=user)
