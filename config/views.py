"""The site's front door: the front page and the API's root. Both only link (by URL name)."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView


@require_safe
def home(request):
    """What this is, and links to the API, its docs, tracking, the dashboard and the admin."""
    return render(request, "home.html")


class ApiRootApi(APIView):
    """Every endpoint of the API, as links."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        namespace = request.resolver_match.namespace or "api"

        def link(name: str, *args: str) -> str:
            return reverse(f"{namespace}:{name}", args=args, request=request)

        tracking = link("tracking", "SHIPMENT_ID").replace("SHIPMENT_ID", "{shipment_id}")
        return Response({
            "orders": link("order-list"),
            "order": link("order-detail", "ORDER_ID").replace("ORDER_ID", "{order_id}"),
            "order_cancel": link("order-cancel", "ORDER_ID").replace("ORDER_ID", "{order_id}"),
            "products": link("product-list"),
            "tracking": tracking,
            "stock": link("stock-list"),
            "payments": link("payment-list"),
            "token": link("token"),
            "token_rotate": link("token-rotate"),
            "schema": reverse("schema", request=request),
            "docs": reverse("docs", request=request),
            "redoc": reverse("redoc", request=request),
        })
