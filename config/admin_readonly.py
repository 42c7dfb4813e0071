"""The admin's read-only pieces every app shares: rows that messages (or the order) wrote are
shown, never added, changed or deleted by hand; an app's actions change them through services.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field of the model shown read-only, with the admin's own ``readonly_fields`` (its
    computed columns) after them; nothing added, changed or deleted by hand."""

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        fields = [f.name for f in self.model._meta.fields]
        return [*fields, *(name for name in self.readonly_fields if name not in fields)]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """An inline of rows shown on their parent's page, never added, changed or deleted there."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def count_noun(n: int, noun: str) -> str:
    """``1 order``, ``3 orders``: a count for an admin message."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
