"""What the demo shows: the orders' live progress, the summary table and where to look next (rich)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from simulation.scenario import Accounts, ScenarioOrder

REFRESH_PER_SECOND = 4
HEARTBEAT_SECONDS = 15.0  # plain output: a "still waiting" line this often

STATUS_STYLES = {
    "new": "bright_white",
    "confirmed": "cyan",
    "paid": "bright_cyan",
    "picked_up": "blue",
    "in_transit": "magenta",
    "out_for_delivery": "yellow",
    "delivered": "bold green",
    "rejected": "bold red",
    "payment_failed": "bold red",
    "cancelled": "red",
}


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


class Progress:
    """The orders' progress while they travel: on a terminal a table redrawn in place, otherwise
    one line per change and a heartbeat line now and then."""

    def __init__(self, console: Console, orders: Sequence[ScenarioOrder], *, timeout: float) -> None:
        self.console = console
        self.orders = orders
        self.timeout = timeout
        self.started = self.heartbeat = time.monotonic()
        self.live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(self._table(), console=self.console, refresh_per_second=REFRESH_PER_SECOND)
            self.live.start()
        else:
            self.changed(self.orders)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            self.live.stop()

    def changed(self, orders: Sequence[ScenarioOrder]) -> None:
        """Show the orders that changed since the last call."""
        now = time.monotonic()
        if self.live is not None:
            self.live.update(self._table())
            return
        for order in orders:
            self.console.print(f"[{now - self.started:6.1f}s] {order.short_id} {order.customer:<14} "
                               f"{order.status:<16} {order.describe()}", highlight=False, markup=False, soft_wrap=True)
        if now - self.heartbeat >= HEARTBEAT_SECONDS:
            self.heartbeat = now
            self.console.print(f"[{now - self.started:6.1f}s] {self._title()}", highlight=False, markup=False)

    def _title(self) -> str:
        done = sum(o.is_final for o in self.orders)
        waiting = sum(o.delivery_status == "awaiting_vehicle" for o in self.orders if not o.is_final)
        return (f"{done}/{len(self.orders)} orders final · {waiting} waiting for a vehicle · "
                f"{time.monotonic() - self.started:.0f}s of {self.timeout:.0f}s · ★ = the seed's order")

    def _table(self) -> Table:
        now = time.monotonic()
        table = Table(title=self._title(), title_justify="left")
        for column in ("Order", "Customer", "Items", "Status", "Delivery / message", "Shipment", "Elapsed"):
            table.add_column(column, no_wrap=column not in ("Items", "Delivery / message"),
                             justify="right" if column == "Elapsed" else "left",
                             overflow="fold" if column == "Delivery / message" else "ellipsis")
        for order in self.orders:
            waiting = order.delivery_status == "awaiting_vehicle"
            style = "red" if order.status == "rejected" else "yellow" if waiting else ""
            table.add_row(order.short_id + (" ★" if order.is_seed else ""), order.customer, order.items,
                          _status(order.status), Text(order.describe(), style=style), order.shipment_id or "–",
                          f"{order.elapsed(now):5.1f}s")
        return table


def summary_print(console: Console, orders: Sequence[ScenarioOrder]) -> None:
    table = Table(title="Summary", title_justify="left")
    for column in ("Order", "Customer", "Total", "Final status", "Shipment", "Compensation", "Time to final"):
        table.add_column(column, no_wrap=column != "Compensation",
                         justify="right" if column in ("Total", "Time to final") else "left")
    for order in orders:
        table.add_row(
            order.order_id if console.width >= 140 else order.short_id,
            order.customer + (" ★" if order.is_seed else ""),
            f"{order.total} {order.currency}",
            _status(order.status if order.is_final else f"{order.status} (not final)"),
            order.shipment_id or "–",
            order.compensation or "–",
            f"{order.final_seconds:.1f}s" if order.final_seconds is not None else "–",
        )
    console.print(table)


def links_print(console: Console, *, base_url: str, accounts: Accounts, orders: Sequence[ScenarioOrder],
                log_glob: str) -> None:
    """Where to look at what the demo did, and the credentials to get in."""
    if accounts.admin_password:
        admin = f"user [bold]{accounts.admin_username}[/], password [bold]{accounts.admin_password}[/]"
    else:
        admin = f"existing admin user [bold]{accounts.admin_username}[/] (password unchanged)"
    lines = [
        f"Admin            {base_url}/admin/  ({admin})",
        f"Orders API       {base_url}/api/orders/  (header Authorization: Token {accounts.customer_token})",
        f"API docs         {base_url}/api/docs/",
    ]
    seed = next((o for o in orders if o.is_seed), None)
    if seed and seed.shipment_id:
        lines += [f"Seed tracking    {base_url}/api/tracking/{seed.shipment_id}/",
                  f"Seed track page  {base_url}/track/{seed.shipment_id}/"]
    lines += [f"Dashboard        {base_url}/dashboard/", f"Process logs     {log_glob}"]
    console.print("\n".join(lines), highlight=False)
