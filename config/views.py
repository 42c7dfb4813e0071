"""The site's front door: the front page, the API's root (both only link, by URL name) and the
API's schema and docs."""

from __future__ import annotations

from django.shortcuts import render
from django.views import View
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
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

    name = "Logistics API"
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        namespace = getattr(request.resolver_match, "namespace", None) or "api"

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


class _PlainOptions:
    """OPTIONS answers with the allowed methods and no body, as Django's views do. DRF's answer
    (the view's metadata) would go through the page's own renderer: Swagger UI's HTML template
    renderer has no template for it (500), and ReDoc's and the schema's made a page or a schema
    of nothing."""

    def options(self, request, *args, **kwargs):
        return View.options(self, request, *args, **kwargs)  # type: ignore[arg-type]  # View's answer, on a DRF view


class ApiSchema(_PlainOptions, SpectacularAPIView):
    """The OpenAPI schema (YAML, or JSON with ``?format=json``)."""


class ApiDocs(_PlainOptions, SpectacularSwaggerSplitView):
    """Swagger UI."""


class ApiRedoc(_PlainOptions, SpectacularRedocView):
    """ReDoc."""
