"""The message history: how the outbox and the processed records are kept, and how they leave.

Every message leaves rows behind: its outbox row and one processed record per consumer. On
PostgreSQL both tables are partitioned by day (declarative RANGE partitioning):

- the outbox (``messaging_outboxmessage``) by ``created_at``: a row is written into today's
  partition and stays there;
- the processed records (``messaging_processedmessage``) by ``message_created_at``, the
  message's own creation time that every delivery of it carries (its AMQP timestamp): a
  redelivery meets the first record in the same partition, so the unique key
  (consumer, message_id, message_created_at) still says "duplicate".

Housekeeping makes the partitions ``AHEAD_DAYS`` ahead (``history_partitions_ensure``) and
lets old history go by ``DETACH PARTITION ... CONCURRENTLY`` and ``DROP TABLE``
(``history_prune``): no row is deleted one by one, no dead tuple is left for VACUUM, and
neither the relay nor the consumers wait on a lock. An outbox partition is dropped only when
nothing in it is still pending: an unpublished row (a timer due later, a row the relay could
not send) or the origin of a dead letter not yet re-driven keeps its whole partition.

The processed records' partitions cover one unbroken range of days (``HistoryWindow``). The
inbox insert keeps a message's key inside it: a message written before the oldest partition
(a timer set before the retention, a message that waited in a queue for days) is recorded at
the window's start, which moves only when a prune drops a day; so its redeliveries still meet
it, until the next day's prune.

SQLite keeps plain tables and prunes with ``DELETE`` (a development database).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone

logger = logging.getLogger("messaging.history")

OUTBOX_TABLE = "messaging_outboxmessage"
PROCESSED_TABLE = "messaging_processedmessage"
WINDOW_TABLE = "messaging_historywindow"

# The partitioned tables and their partition keys.
PARTITION_KEYS = {OUTBOX_TABLE: "created_at", PROCESSED_TABLE: "message_created_at"}

# Days of partitions made ahead of today: housekeeping that stops for this long stops the writes.
AHEAD_DAYS = 7

# Housekeeping's DDL waits this long for a lock, then gives up until its next run, rather than
# queue the relay's and the consumers' statements behind it.
LOCK_TIMEOUT = "5s"
# A concurrent detach blocks nobody while it waits for the transactions that still see the partition.
DETACH_TIMEOUT = "1min"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def partitioned(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the history is partitioned here (PostgreSQL)."""
    return connections[using].vendor == "postgresql"


@dataclass(frozen=True)
class Partition:
    table: str  # the partitioned table
    name: str
    day: date
    detach_pending: bool = False

    @property
    def start(self) -> datetime:
        return day_start(self.day)

    @property
    def end(self) -> datetime:
        return day_start(self.day + timedelta(days=1))


def partitions_list(cursor, table: str) -> list[Partition]:
    """The day partitions of ``table``, oldest first (named ``<table>_pYYYYMMDD``)."""
    cursor.execute(
        "SELECT c.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY c.relname", [table])
    found = []
    prefix = f"{table}_p"
    for name, pending in cursor.fetchall():
        if name.startswith(prefix) and len(name) == len(prefix) + 8 and name[len(prefix):].isdigit():
            found.append(Partition(table, name, datetime.strptime(name[len(prefix):], "%Y%m%d").date(), pending))
    return found


def partition_create(cursor, table: str, day: date) -> None:
    """Make ``table``'s partition for ``day``: a table of the parent's shape, then ATTACHed.

    CREATE TABLE ... PARTITION OF would lock the parent against every reader and writer;
    ATTACH takes a lock that lets them go on (SHARE UPDATE EXCLUSIVE) and builds the
    parent's indexes on the new, empty table."""
    name = partition_name(table, day)
    start, end = day_start(day), day_start(day + timedelta(days=1))
    cursor.execute(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    # DDL takes no parameters; the bounds are dates this module made
    cursor.execute(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" '
                   f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")


def days_missing(existing: list[Partition], first: date, last: date) -> list[date]:
    have = {p.day for p in existing}
    return [first + timedelta(days=n) for n in range((last - first).days + 1)
            if first + timedelta(days=n) not in have]


def window_refresh(cursor) -> None:
    """Record the unbroken range of days the processed records' partitions cover, ending with
    the newest (what the inbox insert keeps keys inside)."""
    _window_of(cursor, [p.day for p in partitions_list(cursor, PROCESSED_TABLE) if not p.detach_pending])


def _window_of(cursor, days: list[date]) -> None:
    """Record the unbroken run of ``days`` that ends with the newest as the window."""
    days = sorted(set(days))
    if not days:
        return
    oldest = days[-1]
    while oldest - timedelta(days=1) in days:
        oldest -= timedelta(days=1)
    window_set(cursor, oldest=day_start(oldest), newest=day_start(days[-1] + timedelta(days=1)))


def window_set(cursor, *, oldest: datetime, newest: datetime) -> None:
    cursor.execute(
        f'INSERT INTO "{WINDOW_TABLE}" (id, oldest, newest) VALUES (1, %s, %s) '  # noqa: S608 - names are the models' own, quoted; values go as parameters
        "ON CONFLICT (id) DO UPDATE SET oldest = EXCLUDED.oldest, newest = EXCLUDED.newest", [oldest, newest])


def history_partitions_ensure(*, first: date | None = None, last: date | None = None,
                              using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Make the missing day partitions of both tables from ``first`` (default yesterday) to
    ``last`` (default ``AHEAD_DAYS`` ahead). Returns the names made; nothing on SQLite.

    Idempotent: housekeeping runs it daily, ``migrate`` after every run."""
    if not partitioned(using):
        return []
    today = timezone.now().astimezone(UTC).date()
    first = first or today - timedelta(days=1)
    last = last or today + timedelta(days=AHEAD_DAYS)
    made = []
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s) AND relkind = 'p'",
                       [list(PARTITION_KEYS)])
        if cursor.fetchone()[0] < len(PARTITION_KEYS):
            return []  # not migrated yet (or migrated back)
        for table in PARTITION_KEYS:
            for day in days_missing(partitions_list(cursor, table), first, last):
                # each partition in a short transaction of its own: the lock it takes is let go at once
                with transaction.atomic(using=using):
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    partition_create(cursor, table, day)
                made.append(partition_name(table, day))
        with transaction.atomic(using=using):
            window_refresh(cursor)
    if made:
        logger.info("history partitions made: %s", ", ".join(made))
    return made


def history_days_ahead(*, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS) -> float | None:
    """Days until the newest partition ends (writes stop then); None where the history is not
    partitioned. Housekeeping keeps it above ``AHEAD_DAYS``: alert when it falls below 2."""
    from messaging.models import HistoryWindow

    if not partitioned(using):
        return None
    window = HistoryWindow.objects.using(using).filter(pk=1).first()
    if window is None:
        return None
    return round((window.newest - (now or timezone.now())) / timedelta(days=1), 2)


@dataclass
class PruneResult:
    dropped: list[str] = field(default_factory=list)  # partitions detached and dropped
    kept: dict[str, str] = field(default_factory=dict)  # partition -> why it stays
    outbox_deleted: int = 0  # rows deleted one by one (SQLite only)
    processed_deleted: int = 0


def history_prune(*, older_than: timedelta, now: datetime | None = None,
                  using: str = DEFAULT_DB_ALIAS) -> PruneResult:
    """Let the history older than ``older_than`` go: on PostgreSQL whole day partitions (every
    row in them older than that), each detached concurrently and dropped; on SQLite by DELETE.

    Never drops what is pending: an outbox partition holding an unpublished row or the origin
    of a dead letter not re-driven yet is kept (and named in the result). On PostgreSQL it runs
    outside any transaction (``DETACH ... CONCURRENTLY`` must).
    """
    now = now or timezone.now()
    cutoff = now - older_than
    if not partitioned(using):
        return _prune_by_delete(cutoff=cutoff, using=using)
    connection = connections[using]
    if connection.in_atomic_block:
        raise RuntimeError("history_prune() detaches partitions concurrently: call it outside a transaction")
    result = PruneResult()
    with connection.cursor() as cursor:
        _finish_interrupted(cursor, result)
        for part in partitions_list(cursor, OUTBOX_TABLE):
            if part.end > cutoff:
                continue
            reason = _outbox_pending(cursor, part)
            if reason:
                result.kept[part.name] = reason
                continue
            _detach_and_drop(cursor, part, result)
        old = [p for p in partitions_list(cursor, PROCESSED_TABLE) if p.end <= cutoff]
        if old:
            # First move the window past them (committed): from now on no insert routes a row there.
            _window_of(cursor, [p.day for p in partitions_list(cursor, PROCESSED_TABLE) if p.end > cutoff])
            for part in old:
                _detach_and_drop(cursor, part, result)
            window_refresh(cursor)
    if result.dropped or result.kept:
        logger.info("history prune: dropped %s; kept %s", result.dropped, result.kept)
    return result


def prune_describe(result: PruneResult) -> str:
    if result.outbox_deleted or result.processed_deleted or not (result.dropped or result.kept):
        text = (f"deleted {result.outbox_deleted} published outbox rows and {result.processed_deleted} "
                f"processed-message records")
    else:
        text = f"dropped {len(result.dropped)} partition(s)"
        if result.dropped:
            text += f": {', '.join(result.dropped)}"
    for name, reason in result.kept.items():
        text += f"; kept {name}: {reason}"
    return text


def _outbox_pending(cursor, part: Partition) -> str:
    """Why this outbox partition must stay ('' when nothing in it is pending)."""
    cursor.execute(f'SELECT count(*) FROM "{part.name}" WHERE published_at IS NULL')  # noqa: S608 - names are the models' own, quoted; values go as parameters
    unpublished = cursor.fetchone()[0]
    if unpublished:
        return f"{unpublished} unpublished row(s) (timers due later, or not sent yet)"
    # Dead letters not re-driven yet whose message was written that day (few: each is a
    # person's case to decide): their outbox row stays, the journey and the audit find it.
    cursor.execute("SELECT message_id FROM messaging_deadletter WHERE redriven_at IS NULL AND message_id <> ''")
    ids = [text for (text,) in cursor.fetchall() if _is_uuid(text)]
    if ids:
        cursor.execute(f'SELECT count(*) FROM "{part.name}" WHERE message_id = ANY(%s::uuid[])', [ids])  # noqa: S608 - names are the models' own, quoted; values go as parameters
        parked = cursor.fetchone()[0]
        if parked:
            return f"{parked} message(s) parked as dead letters, not re-driven yet"
    return ""


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _detach_and_drop(cursor, part: Partition, result: PruneResult) -> None:
    """DETACH ... CONCURRENTLY takes a lock that lets readers and writers go on, then waits for
    the transactions that may still see the partition; it gives up after ``DETACH_TIMEOUT``
    (the partition stays, or stays 'detach pending', for the next run to finish)."""
    cursor.execute(f"SET lock_timeout = '{DETACH_TIMEOUT}'")
    try:
        cursor.execute(f'ALTER TABLE "{part.table}" DETACH PARTITION "{part.name}" CONCURRENTLY')
        cursor.execute(f'DROP TABLE "{part.name}"')
    except DatabaseError as exc:
        logger.warning("history prune: %s not dropped this time: %s", part.name, exc)
        result.kept[part.name] = f"not detached this time ({str(exc).strip()}); the next prune tries again"
        return
    finally:
        cursor.execute("RESET lock_timeout")
    result.dropped.append(part.name)


def _finish_interrupted(cursor, result: PruneResult) -> None:
    """A prune stopped between the two steps of a concurrent detach leaves the partition
    'detach pending': finish it (FINALIZE) and drop it."""
    for table in PARTITION_KEYS:
        for part in partitions_list(cursor, table):
            if part.detach_pending:
                cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{part.name}" FINALIZE')
                cursor.execute(f'DROP TABLE "{part.name}"')
                result.dropped.append(part.name)


def _prune_by_delete(*, cutoff: datetime, using: str, chunk: int = 10_000) -> PruneResult:
    """SQLite: delete old published rows and old records in chunks (short transactions)."""
    from messaging.models import OutboxMessage, ProcessedMessage

    totals = []
    for queryset in (OutboxMessage.objects.using(using).filter(published_at__lt=cutoff),
                     ProcessedMessage.objects.using(using).filter(processed_at__lt=cutoff)):
        deleted = 0
        while True:
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:chunk])
            if not ids:
                break
            deleted += queryset.model.objects.using(using).filter(pk__in=ids).delete()[0]
        totals.append(deleted)
    return PruneResult(outbox_deleted=totals[0], processed_deleted=totals[1])
