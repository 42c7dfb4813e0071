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

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from messaging.models import ProcessedMessage


def processed_records(*, consumer: str, message_ids: Sequence[str], using: str = DEFAULT_DB_ALIAS) -> set[str]:
    """Record that ``consumer`` handles these messages; returns the ids recorded now. The others
    were recorded before (duplicates), or are repeated in ``message_ids``.

    Caller holds the transaction the handlers run in: the records commit or roll back with
    what the handlers wrote. A message handled at the same moment by another worker waits on
    the unique index until that worker's transaction ends, then counts as recorded before.
    """
    unique = list(dict.fromkeys(message_ids))
    if not unique:
        return set()
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = ProcessedMessage._meta
    fields = [meta.get_field(name) for name in ("consumer", "message_id", "processed_at")]
    now = fields[2].get_db_prep_save(timezone.now(), connection)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES {', '.join(['(%s, %s, %s)'] * len(unique))} "
        f"ON CONFLICT ({quote(fields[0].column)}, {quote(fields[1].column)}) DO NOTHING "
        f"RETURNING {quote(fields[1].column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for message_id in unique for value in (consumer, message_id, now)])
        return {row[0] for row in cursor.fetchall()}
