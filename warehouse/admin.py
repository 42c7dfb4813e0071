"""The warehouse's admin: the stock (on hand, held, available), its history, and the pick list.

Stock rows are never edited or deleted by hand: a change of stock is an adjustment with a
reason (``services.stock_adjust``), made on the product's "Adjust stock" page, and kept as
its history. Reservations move on only through the action below (a service).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from config.admin_display import address_text, age, id_link, order_links
from config.admin_readonly import ReadOnlyAdmin, ReadOnlyInline, count_noun
from config.errors import DomainError
from warehouse.models import Reservation, ReservationLine, StockAdjustment, StockItem
from warehouse.selectors import pick_list, stock_with_holds
from warehouse.services import picking_complete, stock_adjust

ADJUST_PERMISSION = "warehouse.adjust_stockitem"


class StockAdjustmentForm(forms.Form):
    reason = forms.ChoiceField(choices=StockAdjustment.Reason.choices, widget=forms.RadioSelect)
    quantity = forms.IntegerField(
        min_value=0, max_value=1_000_000,
        help_text="Counted: every unit on the shelf, those held for orders included. Received or damaged: "
                  "the units added or written off.")
    note = forms.CharField(max_length=500, required=False, help_text="e.g. the delivery note or what broke.")


class StockAdjustmentInline(ReadOnlyInline):
    """The product's history: every adjustment, newest first."""

    model = StockAdjustment
    fields = readonly_fields = ("made_at", "reason", "quantity", "change", "on_hand_after", "held",
                                "available_after", "made_by", "note")
    ordering = ["-made_at"]
    verbose_name_plural = "history (adjustments)"


@admin.register(StockItem)
class StockItemAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "bin", "on_hand", "held", "available", "adjust"]
    list_filter = ["location"]
    search_fields = ["sku", "name", "location"]
    inlines = [StockAdjustmentInline]
    actions = ["adjust_selected"]

    class Media:
        css = {"all": ["warehouse/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockItem]:
        return stock_with_holds()

    # A new product starts with nothing on the shelf (received through an adjustment); a stock
    # row is then shown, never edited or deleted: its units change only by adjustments.
    def get_fields(self, request: HttpRequest, obj: StockItem | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("sku", "name", "location")
        return ("sku", "name", "bin", "on_hand", "held", "available", "updated_at", "adjust")

    def get_readonly_fields(self, request: HttpRequest, obj: StockItem | None = None) -> tuple[str, ...]:
        return () if obj is None else self.get_fields(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: StockItem | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StockItem | None = None) -> bool:
        return False

    def has_adjust_permission(self, request: HttpRequest, obj: StockItem | None = None) -> bool:
        return request.user.has_perm(ADJUST_PERMISSION)

    @admin.display(description="bin", ordering="location")
    def bin(self, item: StockItem) -> str:
        return item.location

    @admin.display(description="on hand (on the shelf)", ordering="on_hand")
    def on_hand(self, item: StockItem) -> int:
        return item.on_hand  # type: ignore[attr-defined]  # annotated by stock_with_holds()

    @admin.display(description="held for orders", ordering="held")
    def held(self, item: StockItem) -> int:
        return item.held  # type: ignore[attr-defined]  # annotated by stock_with_holds()

    @admin.display(description="available (left to sell)", ordering="quantity_on_hand")
    def available(self, item: StockItem) -> int:
        return item.quantity_on_hand

    @admin.display(description="")
    def adjust(self, item: StockItem) -> str:
        return format_html('<a class="button" href="{}">Adjust stock</a>',
                           reverse("admin:warehouse_stockitem_adjust", args=[item.pk]))

    def get_urls(self):
        adjust = self.admin_site.admin_view(self.adjust_view)
        return [path("<int:object_id>/adjust/", adjust, name="warehouse_stockitem_adjust"), *super().get_urls()]

    def adjust_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The one way a person changes stock: a reason, a number, a note; the service does the rest."""
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        item = get_object_or_404(stock_with_holds(), pk=object_id)
        form = StockAdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                adjustment = stock_adjust(sku=item.sku, made_by=request.user.get_username(), **form.cleaned_data)
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                self.message_user(request, f"{item.sku} {adjustment.reason}: {adjustment.change:+d} "
                                  f"(on hand {adjustment.on_hand_after}, held {adjustment.held}, available "
                                  f"{adjustment.available_after}).", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:warehouse_stockitem_change", args=[item.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust stock: {item.sku} {item.name}",
            "opts": self.model._meta,
            "item": item,
            "form": form,
            "history": item.adjustments.order_by("-made_at")[:10],
        }
        return TemplateResponse(request, "admin/warehouse/stockitem/adjust.html", context)

    @admin.action(description="Adjust the stock of the selected product", permissions=["adjust"])
    def adjust_selected(self, request: HttpRequest, queryset: QuerySet[StockItem]) -> HttpResponse | None:
        pks = list(queryset.values_list("pk", flat=True)[:2])
        if len(pks) != 1:
            self.message_user(request, "Select one product to adjust: each adjustment has its own count and reason.",
                              messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:warehouse_stockitem_adjust", args=[pks[0]]))


@admin.register(StockAdjustment)
class StockAdjustmentAdmin(ReadOnlyAdmin):
    """Every adjustment of every product: the stock's history, read-only."""

    list_display = ["made_at", "stock_item", "reason", "quantity", "change", "on_hand_after", "held",
                    "available_after", "made_by", "note"]
    list_filter = ["reason", "made_at"]
    search_fields = ["stock_item__sku", "made_by", "note"]
    list_select_related = ["stock_item"]


class ReservationLineInline(ReadOnlyInline):
    model = ReservationLine
    fields = readonly_fields = ("stock_item", "bin", "quantity")

    @admin.display(description="bin")
    def bin(self, line: ReservationLine) -> str:
        return line.stock_item.location


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    """The pick list: what to pick for each order, from which bins, how it ships, how long it waits."""

    list_display = ["order", "status", "lines_and_bins", "shipping_method", "ship_to", "waiting", "created_at"]
    list_display_links = ["status"]
    list_filter = ["status", "shipping_method"]
    search_fields = ["order_id", "recipient"]
    inlines = [ReservationLineInline]

    class Media:
        css = {"all": ["warehouse/admin.css"]}

    fields = readonly_fields = ("order_full", "status", "reason", "recipient", "address", "shipping_method",
                                "created_at", "picked_at", "released_at", "elsewhere")
    actions = ["mark_picking_done"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Reservation]:
        return pick_list()

    # Reservations are the warehouse's answers to messages: staff move them on through the
    # action below (a service), never by adding, editing or deleting one by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="order", ordering="order_id")
    def order(self, reservation: Reservation) -> str:
        return id_link("shop_order_change", reservation.order_id)

    @admin.display(description="order")
    def order_full(self, reservation: Reservation) -> str:
        return id_link("shop_order_change", reservation.order_id, short=False)

    @admin.display(description="lines (bin)")
    def lines_and_bins(self, reservation: Reservation) -> str:
        lines = sorted(reservation.lines.all(), key=lambda line: (line.stock_item.location, line.stock_item.sku))
        if not lines:
            return "—"
        return format_html_join(
            mark_safe("<br>"), "{} × {} <small>{}</small> @ <strong>{}</strong>",
            ((line.quantity, line.stock_item.sku, line.stock_item.name, line.stock_item.location) for line in lines))

    @admin.display(description="ship to")
    def ship_to(self, reservation: Reservation) -> str:
        address = reservation.shipping_address or {}
        return address.get("city") or "—"

    @admin.display(description="address")
    def address(self, reservation: Reservation) -> str:
        return address_text(reservation.shipping_address)

    @admin.display(description="age", ordering="created_at")
    def waiting(self, reservation: Reservation) -> str:
        return age(reservation.created_at)

    @admin.display(description="see also")
    def elsewhere(self, reservation: Reservation) -> str:
        return order_links(reservation.order_id, leave_out="reservation")

    @admin.action(description="Mark picking done", permissions=["change"])
    def mark_picking_done(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> None:
        """The warehouse staff's command: each selected order picked and handed to transport.
        The status read here only sorts the report; picking_complete decides under its lock."""
        moved, not_picking = 0, []
        for order_id, status in queryset.order_by("pk").values_list("order_id", "status"):
            reservation = picking_complete(order_id=order_id)
            picked = reservation is not None and reservation.status == Reservation.Status.PICKED
            if status == Reservation.Status.PICKING and picked:
                moved += 1
            else:
                not_picking.append(status)
        if moved:
            self.message_user(request, f"{count_noun(moved, 'order')} picked and handed to transport.",
                              messages.SUCCESS)
        if not_picking:
            by_status = ", ".join(f"{not_picking.count(s)} {s}" for s in sorted(set(not_picking)))
            self.message_user(request, f"{count_noun(len(not_picking), 'order')} not being picked, left as "
                              f"they were ({by_status}).", messages.WARNING)

