"""Sign-in API: a customer's or driver's API token for their password, and its replacement."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from config.client_address import client_ip
from config.openapi import COMMON_ERRORS
from config.throttling import LoginThrottle, UserThrottle


class TokenIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="send it as `Authorization: Token <token>`")


class TokenObtainApi(GenericAPIView):
    """Exchange a customer's username and password for their API token."""

    name = "Your API token"
    permission_classes = [AllowAny]
    authentication_classes = []  # a password login, never a session's (no CSRF needed)
    throttle_classes = [LoginThrottle]
    serializer_class = TokenIn

    @extend_schema(summary="Your API token, for your username and password", request=TokenIn,
                   responses={200: TokenOut, **COMMON_ERRORS}, auth=[])
    def post(self, request: Request) -> Response:
        body = TokenIn(data=request.data)
        body.is_valid(raise_exception=True)
        key = services.token_obtain(**body.validated_data, client_address=client_ip(request),
                                    user_agent=request.headers.get("User-Agent", ""))
        return Response({"token": key})


class TokenRotateApi(GenericAPIView):
    """Replace your API token: the old one stops working at once."""

    name = "Replace your API token"
    permission_classes = [IsAuthenticated]
    throttle_classes = [UserThrottle, LoginThrottle]
    serializer_class = TokenOut

    @extend_schema(summary="Replace your API token", request=None, responses={200: TokenOut, **COMMON_ERRORS})
    def post(self, request: Request) -> Response:
        return Response({"token": services.token_rotate(user=request.user)})
