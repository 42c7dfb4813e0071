"""The inbox: which messages each consumer has handled (``ProcessedMessage``).

A handler runs in one transaction together with the record that its message was handled, so a
message delivered again finds the record and changes nothing twice. The records are written by
the one statement here, on every message: ``INSERT ... ON CONFLICT DO NOTHING RETURNING``. It
says which messages are new without raising (the ORM's ``create`` would raise an IntegrityError
for a duplicate, and recovering from it inside the handler's transaction needs a savepoint;
``bulk_create(ignore_conflicts=True)`` does not say which rows it skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import cast

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field
from django.utils import timezone

from messaging.history import WINDOW_TABLE
from messaging.models import ProcessedMessage


def processed_records(*, consumer: str, message_ids: Sequence[str], created: Sequence[datetime | None] = (),
                      using: str = DEFAULT_DB_ALIAS) -> set[str]:
    """Record that ``consumer`` handles these messages; returns the ids recorded now. The others
    were recorded before (duplicates), or are repeated in ``message_ids``.

    ``created``: each message's creation time as its delivery carries it (the AMQP timestamp),
    the partition key of its record (``messaging.history``); a message without one (written
    outside this system) is keyed by the day it arrives. On PostgreSQL the key is kept inside
    the days the partitions cover (``HistoryWindow``).

    Caller holds the transaction the handlers run in: the records commit or roll back with
    what the handlers wrote. A message handled at the same moment by another worker waits on
    the unique index until that worker's transaction ends, then counts as recorded before.
    """
    now = timezone.now()
    today = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    keys = dict(zip(message_ids, created, strict=False))
    unique = list(dict.fromkeys(message_ids))
    if not unique:
        return set()
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = ProcessedMessage._meta
    fields = [cast(Field, meta.get_field(name))  # concrete columns, no relations
              for name in ("consumer", "message_id", "processed_at", "message_created_at")]
    columns = ", ".join(quote(field.column) for field in fields)
    prepared_now = fields[2].get_db_prep_save(now, connection)
    values = [value for message_id in unique for value in (
        consumer, message_id, prepared_now, fields[3].get_db_prep_save(_second(keys.get(message_id)) or today,
                                                                         connection))]
    conflict = ", ".join(quote(field.column) for field in (fields[0], fields[1], fields[3]))
    if connection.vendor == "postgresql":
        # the key kept inside the partitions' days: at least the oldest day, before the end of the newest
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 - names are the models' own, quoted; values go as parameters
            f"SELECT v.consumer, v.message_id, v.processed_at, "
            f"LEAST(GREATEST(v.created, w.oldest), w.newest - interval '1 second') "
            f"FROM (VALUES {', '.join(['(%s, %s, %s::timestamptz, %s::timestamptz)'] * len(unique))}) "
            f"AS v(consumer, message_id, processed_at, created) "
            f"LEFT JOIN {quote(WINDOW_TABLE)} w ON w.id = 1 "
            f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {quote(fields[1].column)}"
        )
    else:
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 - names are the models' own, quoted; values go as parameters
            f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(unique))} "
            f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {quote(fields[1].column)}"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return {row[0] for row in cursor.fetchall()}


def _second(moment: datetime | None) -> datetime | None:
    """Whole seconds, as the AMQP timestamp carries it (an outbox row's created_at, truncated)."""
    return None if moment is None else moment.replace(microsecond=0)
