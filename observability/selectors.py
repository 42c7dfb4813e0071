"""Reads for the dashboard, the order journey, the health checks and the metrics.

Nothing here writes. Every function takes what it needs as keyword arguments (``now`` too,
so a test can pin the clock) and returns plain data: dicts, lists, numbers, ISO strings.
"""

from __future__ import annotations

import contextlib
import math
import socket
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode

from messaging import broker, topology
from messaging.heartbeats import heartbeats_recent, is_silent
from messaging.history import history_days_ahead
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from messaging.tracing import trace_id_of
from observability.models import AuditRun
from observability.tracing import trace_url
from shop.models import FINAL_STATUSES, Order, OrderStatus
from shop.selectors import order_counts_by_status, order_find, order_status_changes, orders_newest, orders_stalled
from transport.models import Vehicle
from transport.selectors import vehicle_counts

# The order's stages as the dashboard shows them, in the order they happen.
STAGES: list[str] = [
    OrderStatus.NEW,
    OrderStatus.CONFIRMED,
    OrderStatus.PAID,
    OrderStatus.PICKED_UP,
    OrderStatus.IN_TRANSIT,
    OrderStatus.OUT_FOR_DELIVERY,
    OrderStatus.DELIVERED,
    OrderStatus.REJECTED,
    OrderStatus.PAYMENT_FAILED,
    OrderStatus.CANCELLED,
]
# The stages an order is still moving through (the flow chart stacks these).
IN_FLIGHT_STAGES: list[str] = [s for s in STAGES if s not in FINAL_STATUSES]
# Where an order ends (the throughput chart draws each).
FINAL_STAGES: list[str] = [s for s in STAGES if s in FINAL_STATUSES]
STAGE_LABELS: dict[str, str] = {str(value): str(label) for value, label in OrderStatus.choices}

FLOW_SAMPLES = 60
LATEST_ORDERS = 20


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    """Milliseconds from ``earlier`` to ``later`` (one decimal), None when either is unknown."""
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds() * 1000, 1)


# --- orders ------------------------------------------------------------------------------
def orders_per_stage() -> dict[str, int]:
    """{status: number of orders in it} for every status, zeros included, in stage order."""
    counts = order_counts_by_status()
    return {stage: counts.get(stage, 0) for stage in STAGES}


def orders_latest(*, limit: int = LATEST_ORDERS) -> list[dict[str, Any]]:
    """The newest orders: id, stage, shipment and times (no personal data)."""
    rows = orders_newest(limit=limit)
    return [
        {
            "order_id": str(row["id"]),
            "status": row["status"],
            "status_label": STAGE_LABELS.get(row["status"], row["status"]),
            "shipment_id": row["shipment_id"] or None,
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
        }
        for row in rows
    ]


def flow_series(*, now: datetime, minutes: int, samples: int = FLOW_SAMPLES) -> dict[str, Any]:
    """How orders moved through the stages in the last ``minutes``, from the status history.

    * ``in_flight[stage][i]``: orders in each not-yet-final stage at ``times[i]`` (the
      ``samples`` instants ending at ``now``), replayed from ``OrderStatusChange`` rows;
    * ``placed[i]`` and, for every final status, ``delivered[i]``, ``rejected[i]``,
      ``payment_failed[i]``, ``cancelled[i]``: orders that reached that status in the interval
      ending at ``times[i]``.

    Only orders still moving at the window's start are read: one that was final before it
    cannot be in flight inside it.
    """
    step = timedelta(seconds=minutes * 60 / samples)
    start = now - step * samples
    times = [start + step * (i + 1) for i in range(samples)]
    changes = order_status_changes(since=start, until=now)
    in_flight = {stage: [0] * samples for stage in IN_FLIGHT_STAGES}
    arrivals = {status: [0] * samples for status in (OrderStatus.NEW, *FINAL_STAGES)}
    current: dict[Any, str] = {}
    stage_counts: Counter[str] = Counter()
    sample = 0

    def close_samples_until(moment: datetime) -> None:
        nonlocal sample
        while sample < samples and times[sample] < moment:
            for stage in IN_FLIGHT_STAGES:
                in_flight[stage][sample] = stage_counts[stage]
            sample += 1

    for order_id, status, at in changes:
        close_samples_until(at)
        previous = current.get(order_id)
        if previous is not None:
            stage_counts[previous] -= 1
        current[order_id] = status
        stage_counts[status] += 1
        if at > start and status in arrivals:
            # interval i is (times[i] - step, times[i]]
            index = min(samples - 1, max(0, math.ceil((at - start) / step) - 1))
            arrivals[status][index] += 1
    close_samples_until(now + timedelta(microseconds=1))
    return {
        "minutes": minutes,
        "step_seconds": step.total_seconds(),
        "times": [_iso(t) for t in times],
        "stages": IN_FLIGHT_STAGES,
        "in_flight": in_flight,
        "placed": arrivals[OrderStatus.NEW],
        "final": FINAL_STAGES,
        **{str(status): arrivals[status] for status in FINAL_STAGES},
    }


# --- messaging -----------------------------------------------------------------------------
def outbox_backlog(*, now: datetime) -> dict[str, Any]:
    """Outbox rows due and not published yet, how long the oldest has been due (the relay's
    lag), how many failed, and the timers not due yet (they are no backlog).

    Read through the relay's due index (unpublished rows by ``next_attempt_at``: when each row
    may go out, its creation, a timer's due time, a refused row's retry).
    """
    waiting = OutboxMessage.objects.filter(published_at__isnull=True)
    stats = waiting.filter(next_attempt_at__lte=now).aggregate(n=Count("id"), oldest=Min("next_attempt_at"))
    oldest = stats["oldest"]
    return {
        "unpublished": stats["n"],
        "oldest_created_at": _iso(oldest),
        "oldest_age_seconds": round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else 0.0,
        "failing": waiting.exclude(last_error="").count(),
        "timers_waiting": waiting.filter(next_attempt_at__gt=now).count(),
    }


def dead_letters_per_queue() -> dict[str, int]:
    """Dead letters not yet re-driven, per queue: every work queue (zeros included), then any other."""
    counts = dict(
        DeadLetter.objects.filter(redriven_at__isnull=True)
        .values_list("queue").annotate(n=Count("id")).values_list("queue", "n")
    )
    result = {queue: counts.pop(queue, 0) for queue in topology.work_queues()}
    result.update(sorted(counts.items()))
    return result


def queue_depths() -> dict[str, Any]:
    """Each work queue's ready messages and consumers, with its retry and dead-letter queues.

    ``{"reachable": False, "error": ...}`` when RabbitMQ cannot be asked: the dashboard then
    says so instead of failing.
    """
    refused = _broker_port_error()
    if refused:
        return {"reachable": False, "error": refused, "queues": []}
    try:
        depths = broker.queue_depths(topology.all_queue_names())
    except Exception as exc:  # noqa: BLE001 - any broker failure is "unreachable" here
        return {"reachable": False, "error": type(exc).__name__, "queues": []}
    attempts = range(1, len(topology.retry_delays()) + 1)
    queues = []
    for queue in topology.work_queues():
        main = depths.get(queue)
        dlq = depths.get(topology.dead_letter_queue(queue))
        retries = [depths.get(topology.retry_queue(queue, n)) for n in attempts]
        queues.append({
            "queue": queue,
            "declared": main is not None,
            "ready": main[0] if main else 0,
            "consumers": main[1] if main else 0,
            "retrying": sum(r[0] for r in retries if r),
            "dlq": dlq[0] if dlq else 0,
        })
    return {"reachable": True, "error": None, "queues": queues}


def vehicles_busy_free() -> dict[str, int]:
    counts = vehicle_counts()
    return {
        "busy": counts.get(Vehicle.Status.BUSY, 0),
        "free": counts.get(Vehicle.Status.AVAILABLE, 0),
        "maintenance": counts.get(Vehicle.Status.MAINTENANCE, 0),
    }


def dashboard_data(*, now: datetime, minutes: int) -> dict[str, Any]:
    """Everything /dashboard/ shows, as one JSON-ready dict; ``trouble`` first."""
    data = {
        "generated_at": _iso(now),
        "time_zone": settings.TIME_ZONE,
        "stages": [{"status": s, "label": STAGE_LABELS[s], "count": n} for s, n in orders_per_stage().items()],
        "flow": flow_series(now=now, minutes=minutes),
        "broker": queue_depths(),
        "outbox": outbox_backlog(now=now),
        "dead_letters": dead_letters_per_queue(),
        "vehicles": vehicles_busy_free(),
        "latest_orders": orders_latest(),
        "audit": audit_latest(),
        "workers": workers_seen(now=now),
    }
    return {"trouble": trouble(now=now, data=data), **data}


# --- what needs a person now ------------------------------------------------------------------
def _url(name: str, *args: Any, query: dict[str, Any] | None = None) -> str:
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return ""
    return f"{url}?{urlencode(query)}" if query else url


def _clock(iso: str | None) -> str:
    """An ISO time as the site's clock shows it (TIME_ZONE), to the second, with the zone."""
    if not iso:
        return "never"
    return timezone.localtime(datetime.fromisoformat(iso)).strftime("%H:%M:%S %Z")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def trouble(*, now: datetime, data: dict[str, Any]) -> list[dict[str, Any]]:
    """What needs a person now, most urgent first, each ``{kind, count, text, url}``:

    * ``dead_letters``: messages parked and not re-driven (a person decides: fix and re-drive);
    * ``silent_workers``: relays or workers that stopped beating without a clean stop (killed,
      hung, frozen);
    * ``stuck_deliveries``: queues where RabbitMQ counts more consumers than there are live
      workers of that queue: a silent consumer still takes messages and holds them
      unacknowledged until its process ends;
    * ``stalled_orders``: orders in a non-final stage that nothing moved for
      AUDIT_ORDER_STALLED_MINUTES;
    * ``audit_gaps``: deliveries the last audit found nobody accounts for.
    """
    found: list[dict[str, Any]] = []
    dead = {queue: n for queue, n in data["dead_letters"].items() if n}
    if dead:
        total = sum(dead.values())
        found.append({
            "kind": "dead_letters", "count": total,
            "text": f"{_plural(total, 'dead letter', 'dead letters')} waiting for a person ("
                    + ", ".join(f"{queue} {n}" for queue, n in dead.items()) + ")",
            "url": _url("admin:messaging_deadletter_changelist", query={"redriven_at__isempty": "1"})})
    silent = [w for w in data["workers"] if w["state"] == "silent"]
    if silent:
        names = ", ".join(f"{w['kind']}{' ' + w['queue'] if w['queue'] else ''} (pid {w['pid']}, last heard "
                          f"{_clock(w['beat_at'])})" for w in silent[:5])
        found.append({"kind": "silent_workers", "count": len(silent),
                      "text": f"{_plural(len(silent), 'worker', 'workers')} silent for over "
                              f"{settings.WORKER_SILENT_SECONDS:g} s: {names}", "url": "#h-workers"})
    if data["broker"]["reachable"]:
        live = Counter(w["queue"] for w in data["workers"] if w["state"] == "live" and w["kind"] == "consumer")
        held = [(q["queue"], q["consumers"] - live[q["queue"]]) for q in data["broker"]["queues"]
                if q["consumers"] > live[q["queue"]]]
        if held:
            found.append({
                "kind": "stuck_deliveries", "count": sum(n for _, n in held),
                "text": "; ".join(f"{queue}: RabbitMQ hands messages to {_plural(n, 'consumer', 'consumers')} "
                                  f"that {'is' if n == 1 else 'are'} not live" for queue, n in held)
                        + "; what it is handed waits unacknowledged until its process ends",
                "url": "#h-queues"})
    stalled_minutes = settings.AUDIT_ORDER_STALLED_MINUTES
    before = now - timedelta(minutes=stalled_minutes)
    count, oldest = orders_stalled(before=before)
    if count:
        found.append({
            "kind": "stalled_orders", "count": count,
            "text": f"{_plural(count, 'order', 'orders')} not moved for over {stalled_minutes:g} min ("
                    + ", ".join(f"{str(o['id'])[:8]} at {o['status']}" for o in oldest) + ")",
            "url": _url("admin:shop_order_changelist", query={
                "status__in": ",".join(IN_FLIGHT_STAGES), "updated_at__lt": before.isoformat()})})
    audit = data["audit"]
    if audit and audit["gap_count"]:
        found.append({
            "kind": "audit_gaps", "count": audit["gap_count"],
            "text": f"the last audit ({_clock(audit['finished_at'])}) found "
                    f"{_plural(audit['gap_count'], 'delivery', 'deliveries')} nobody accounts for: "
                    "manage.py audit --repair sends them again",
            "url": _url("admin:observability_auditrun_changelist")})
    return found


# --- one order's journey ---------------------------------------------------------------------
def order_journey(*, order_id: str) -> dict[str, Any] | None:
    """The order's timeline across systems, or None when nothing is known about ``order_id``.

    ``hops``: every outbox message correlated with the order, oldest first, each with who
    handled it and when, and how long each step took:

    * ``timer_wait_ms``: a timer's wait, written -> due (None for a message sent at once);
    * ``write_to_publish_ms``: written (a timer: due) -> confirmed by the broker: the relay's
      own time, a timer's wait left out;
    * ``publish_to_handle_ms``: published -> handled by its consumer (queue + worker);
    * ``cause_to_write_ms``: the message that caused it handled -> this one written (the
      handler, or a timed step in between). None when the cause was an HTTP request.
    """
    order = order_find(order_id=order_id)
    messages = list(OutboxMessage.objects.filter(correlation_id=order_id).order_by("created_at", "id"))
    if order is None and not messages:
        return None
    ids = [str(m.message_id) for m in messages]
    message_causes = _message_causes(messages)
    handled_by = _handlers_of(set(ids) | {m.causation_id for m in messages if m.causation_id})
    handled_at = {mid: rows[0][1] for mid, rows in handled_by.items()}
    hops = [_hop(index, message, handled_by.get(str(message.message_id), []), message_causes, handled_at)
            for index, message in enumerate(messages, start=1)]
    ends = [m.created_at for m in messages] + [handled_at[mid] for mid in ids if mid in handled_at]
    first = messages[0].created_at if messages else None
    trace_id = next((trace_id_of(m.traceparent) for m in messages if trace_id_of(m.traceparent)), "")
    return {
        "order_id": order_id,
        "status": order.status if order else None,
        "status_label": STAGE_LABELS.get(order.status, order.status) if order else None,
        "shipment_id": (order.shipment_id or None) if order else None,
        "created_at": _iso(order.created_at) if order else None,
        "hops": hops,
        "status_history": _status_history(order) if order is not None else [],
        "dead_letters": _dead_letters(order_id),
        "total_ms": _ms(max(ends), first) if ends and first else None,
        # one trace per order: the request's trace id, carried by every message that followed
        "trace_id": trace_id,
        "trace_url": trace_url(trace_id),
    }


def _message_causes(messages: list[OutboxMessage]) -> set[str]:
    """The causation ids among ``messages`` that name a message (theirs, or one of another
    correlation id); any other cause is an HTTP request."""
    known = {str(m.message_id) for m in messages}
    elsewhere = [c for c in {m.causation_id for m in messages if m.causation_id} - known if _is_uuid(c)]
    return known | {
        str(mid) for mid in OutboxMessage.objects.filter(message_id__in=elsewhere).values_list("message_id", flat=True)}


def _handlers_of(message_ids: set[str]) -> dict[str, list[tuple[str, datetime]]]:
    """Each message's consumers and when each handled it, the first first."""
    handled_by: dict[str, list[tuple[str, datetime]]] = {}
    for consumer, message_id, processed_at in (
        ProcessedMessage.objects.filter(message_id__in=message_ids).order_by("processed_at", "id")
        .values_list("consumer", "message_id", "processed_at")
    ):
        handled_by.setdefault(message_id, []).append((consumer, processed_at))
    return handled_by


def _hop(index: int, message: OutboxMessage, consumers: list[tuple[str, datetime]], message_causes: set[str],
         handled_at: dict[str, datetime]) -> dict[str, Any]:
    """One message of the journey, with its steps' times (``order_journey`` says which)."""
    first_handled = consumers[0][1] if consumers else None
    caused_by_message = message.causation_id in message_causes
    return {
        "index": index,
        "message_id": str(message.message_id),
        "queue": message.queue,
        "type": message.type,
        "producer": message.producer,
        "causation_id": message.causation_id or None,
        "caused_by": "message" if caused_by_message else ("request" if message.causation_id else None),
        "handled_by": [{"consumer": c, "processed_at": _iso(at)} for c, at in consumers],
        "created_at": _iso(message.created_at),
        "due_at": _iso(message.due_at),
        "published_at": _iso(message.published_at),
        "handled_at": _iso(first_handled),
        "timer_wait_ms": _ms(message.due_at, message.created_at) if message.due_at else None,
        "write_to_publish_ms": _ms(message.published_at, max(message.created_at, message.due_at or
                                                             message.created_at)),
        "publish_to_handle_ms": _ms(first_handled, message.published_at),
        "cause_to_write_ms": (
            _ms(message.created_at, handled_at.get(message.causation_id)) if caused_by_message else None),
        "attempts": message.attempts,
        "last_error": message.last_error or None,
    }


def _status_history(order: Order) -> list[dict[str, Any]]:
    return [
        {"status": status, "label": STAGE_LABELS.get(status, status), "at": _iso(at), "note": note}
        for status, at, note in order.history.order_by("at", "id").values_list("status", "at", "note")
    ]


def _dead_letters(order_id: str) -> list[dict[str, Any]]:
    return [
        {"queue": q, "type": t, "message_id": mid, "reason": reason, "error": error[:300],
         "created_at": _iso(created), "redriven_at": _iso(redriven)}
        for q, t, mid, reason, error, created, redriven in DeadLetter.objects.filter(correlation_id=order_id)
        .order_by("created_at", "id")
        .values_list("queue", "type", "message_id", "reason", "error", "created_at", "redriven_at")
    ]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# --- health ------------------------------------------------------------------------------------
def check_database() -> str:
    """"ok", or "error: <exception type>" (never the message: it may name hosts or users)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"
    return "ok"


def _broker_port_error(timeout: float = 2.0) -> str | None:
    """None when the TCP port of one of the broker's nodes accepts a connection, else the error's
    type name.

    Checked before pika connects so that a broker that is simply down costs one refused
    socket per node, not pika's half-dozen ERROR log lines on every dashboard poll.
    """
    error = "NoNode"
    for params in broker.node_parameters():
        try:
            with socket.create_connection((params.host, params.port), timeout=timeout):
                return None
        except Exception as exc:  # noqa: BLE001
            error = type(exc).__name__
    return error


def check_broker() -> str:
    refused = _broker_port_error()
    if refused:
        return f"error: {refused}"
    try:
        conn = broker.connect(heartbeat=0)
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"
    with contextlib.suppress(Exception):  # we connected, that was the check
        conn.close()
    return "ok"


def workers_seen(*, now: datetime) -> list[dict[str, Any]]:
    """Every relay and queue worker heard from in the last hour: live, silent (no heartbeat for
    WORKER_SILENT_SECONDS: killed, hung, or cut off) or stopped cleanly; a relay that published
    within that time is ``publishing``."""
    seen = []
    for beat in heartbeats_recent(now=now):
        state = "stopped" if beat.stopped_at else ("silent" if is_silent(beat, now=now) else "live")
        recent = beat.last_message_at is not None and (now - beat.last_message_at).total_seconds() <= \
            settings.WORKER_SILENT_SECONDS
        seen.append({"kind": beat.kind, "queue": beat.queue, "host": beat.host, "pid": beat.pid,
                     "started_at": _iso(beat.started_at), "beat_at": _iso(beat.beat_at),
                     "last_message_at": _iso(beat.last_message_at), "messages": beat.messages, "state": state,
                     "publishing": beat.kind == "relay" and state == "live" and recent})
    return seen


def workers_live_per_queue(*, now: datetime) -> dict[tuple[str, str], int]:
    """{(kind, queue): processes live now} (the relay's queue is "")."""
    live: Counter = Counter()
    for beat in heartbeats_recent(now=now):
        if beat.stopped_at is None and not is_silent(beat, now=now):
            live[(beat.kind, beat.queue)] += 1
    return dict(live)


def audit_latest() -> dict[str, Any] | None:
    """The last audit run (``manage.py audit`` or its schedule); None before the first."""
    run = AuditRun.objects.order_by("-id").first()
    if run is None:
        return None
    return {"finished_at": _iso(run.finished_at), "gap_count": run.gap_count, "gaps": run.gaps,
            "stalled_order_count": run.stalled_order_count, "messages": run.messages, "resent": run.resent}


# --- metrics read at scrape time ------------------------------------------------------------------
def metrics_snapshot(*, now: datetime) -> dict[str, Any]:
    outbox = outbox_backlog(now=now)
    return {
        "outbox_backlog": outbox["unpublished"],
        "relay_lag_seconds": outbox["oldest_age_seconds"],
        "dead_letters": dead_letters_per_queue(),
        "orders": orders_per_stage(),
        "audit": audit_latest(),
        "workers_live": workers_live_per_queue(now=now),
        "history_days_ahead": history_days_ahead(now=now),
    }
