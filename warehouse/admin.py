from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from warehouse.models import Reservation, ReservationLine, StockItem
from warehouse.services import picking_complete


@admin.register(StockItem)
class StockItemAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "quantity_on_hand", "location", "updated_at"]
    list_filter = ["location"]
    search_fields = ["sku", "name"]


class ReservationLineInline(admin.TabularInline):
    model = ReservationLine
    extra = 0
    can_delete = False
    readonly_fields = ["stock_item", "quantity"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["order_id", "status", "created_at", "picked_at"]
    list_filter = ["status"]
    search_fields = ["order_id"]
    inlines = [ReservationLineInline]
    readonly_fields = [f.name for f in Reservation._meta.fields]
    actions = ["mark_picking_done"]

    # Reservations are the warehouse's answers to messages: staff move them on through the
    # action below (a service), never by adding, editing or deleting one by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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
            self.message_user(request, f"{_count(moved, 'order')} picked and handed to transport.",
                              messages.SUCCESS)
        if not_picking:
            by_status = ", ".join(f"{not_picking.count(s)} {s}" for s in sorted(set(not_picking)))
            self.message_user(request, f"{_count(len(not_picking), 'order')} not being picked, left as "
                              f"they were ({by_status}).", messages.WARNING)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
