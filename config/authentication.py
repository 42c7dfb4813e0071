"""API tokens: django-rest-knox's, stored hashed (SHA-512 of the key; the admin shows only the
first 15 characters), with an expiry (``API_TOKEN_TTL_DAYS``), for customers and drivers only.

Staff and superusers use the admin and the session: their tokens are refused here as well as
never issued (``accounts.services.api_token_issue``), so a token that leaks from a laptop or a
log never carries staff powers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.settings import knox_settings
from rest_framework import exceptions
from rest_framework.request import Request

if TYPE_CHECKING:
    from django.contrib.auth.models import User

STAFF_REFUSED = "API tokens are for customers and drivers; staff use the admin and the session."


class ApiTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` with a knox token of an active customer or driver."""

    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:  # knox decodes it unguarded: a 500 for a latin-1 byte
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        return super().authenticate_credentials(token)

    def validate_user(self, auth_token):
        user, auth_token = super().validate_user(auth_token)
        if user.is_staff or user.is_superuser:
            raise exceptions.AuthenticationFailed(STAFF_REFUSED)
        return user, auth_token


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The schema's "tokenAuth": ``Authorization: Token <key>``, as DRF's token was."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization",
                                                   token_prefix=knox_settings.AUTH_HEADER_PREFIX)


class AuthenticatedRequest(Request):
    """For annotations only: a request that ``IsAuthenticated`` let through has a user, never
    AnonymousUser (django-stubs' advice for such views)."""

    user: User
