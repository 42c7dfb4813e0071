"""Who may call an endpoint that is not the customers': Django's model permissions, as in the admin.

The staff flag only opens the admin's door; what a staff member may read or do there, and
here, is what their permissions say. A staff user without permissions gets nothing from the
API (before, the flag alone read every order and payment and recorded shipment stages).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class ModelPermission(BasePermission):
    """A user given ``permission`` (an ``app_label.codename``; superusers have every one): a
    subclass names it and the ``message`` a refused caller reads."""

    permission = ""

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.permission))
