"""The sign-in API; config/urls.py includes it under "api/" (and "api/v1/")."""

from django.urls import path

from accounts.api import TokenObtainApi, TokenRotateApi

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="token"),
    path("auth/token/rotate/", TokenRotateApi.as_view(), name="token-rotate"),
]
