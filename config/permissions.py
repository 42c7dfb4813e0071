"""Who may call an endpoint that is not the customers'."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class StaffOrPermission(BasePermission):
    """Staff, or a user given ``permission`` (an ``app_label.codename``): a subclass names it
    and the ``message`` a refused caller reads."""

    permission = ""

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_staff or user.has_perm(self.permission)))
