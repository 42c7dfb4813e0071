"""The history by day partitions on PostgreSQL (see messaging/history.py), rows kept.

1. Processed records get the partition key, ``message_created_at``: the message's creation
   time as its deliveries carry it (the AMQP timestamp, whole seconds). Existing records take
   it from their outbox row when it is still there (so a redelivery of a message that was in
   flight during the upgrade is still a duplicate), else from when they were processed.
2. The unique key of the records holds it; the outbox gets the audit's index on published_at.
3. PostgreSQL: each table is renamed, a partitioned table of the same columns takes its name,
   day partitions are made for every day that has rows (one unbroken range) up to
   ``AHEAD_DAYS`` ahead, the rows are copied over, the old table dropped, and the keys and
   indexes made again on the new one (the partition key added to the primary and unique keys,
   as PostgreSQL requires). The ids go on from the same number (a sequence owned by the id
   column: PostgreSQL 15 has no identity column on a partitioned table).

SQLite keeps plain tables: steps 1 and 2 only.
"""

import re
from datetime import UTC, datetime, timedelta

from django.db import migrations, models
from django.utils import timezone

OUTBOX = "messaging_outboxmessage"
PROCESSED = "messaging_processedmessage"
KEYS = {OUTBOX: "created_at", PROCESSED: "message_created_at"}
AHEAD_DAYS = 7


def backfill_message_created_at(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {PROCESSED} p SET message_created_at = date_trunc('second', o.created_at) "
                f"FROM {OUTBOX} o WHERE p.message_id = o.message_id::text")
        else:  # SQLite keeps a UUID as 32 hex digits, a timestamp as text
            cursor.execute(
                f"UPDATE {PROCESSED} SET message_created_at = (SELECT substr(o.created_at, 1, 19) FROM {OUTBOX} o "
                f"WHERE o.message_id = replace({PROCESSED}.message_id, '-', '')) "
                f"WHERE EXISTS (SELECT 1 FROM {OUTBOX} o WHERE o.message_id = replace({PROCESSED}.message_id, '-', ''))")
        cursor.execute(f"UPDATE {PROCESSED} SET message_created_at = processed_at WHERE message_created_at IS NULL")


def _index_definitions(cursor, table):
    """CREATE INDEX statements of the indexes that back no constraint."""
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", [table])
    return [row[0] for row in cursor.fetchall()]


def _unique_constraints(cursor, table):
    cursor.execute(
        "SELECT c.conname, array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o)::text[] "
        "FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype = 'u' ORDER BY c.conname", [table])
    return cursor.fetchall()


def _days(cursor, table, key):
    """Every day from the first with rows to AHEAD_DAYS ahead (UTC)."""
    today = timezone.now().astimezone(UTC).date()
    cursor.execute(f'SELECT min("{key}") FROM "{table}"')
    first = cursor.fetchone()[0]
    start = min(first.astimezone(UTC).date(), today - timedelta(days=1)) if first else today - timedelta(days=1)
    return [start + timedelta(days=n) for n in range((today + timedelta(days=AHEAD_DAYS) - start).days + 1)]


def _make_again(cursor, table, key, old, *, uniques, index_defs, partitioned):
    cursor.execute(f'DROP TABLE "{old}"')  # its indexes, constraints, trigger and id sequence go with it
    pk = f'"id", "{key}"' if partitioned else '"id"'
    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({pk})')
    for name, columns in uniques:
        columns = [c for c in columns if partitioned or c != key or table == PROCESSED]
        if partitioned and key not in columns:
            columns.append(key)
        cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" UNIQUE ({", ".join(f"{c!s}" for c in columns)})')
    for definition in index_defs:
        cursor.execute(re.sub(r" ON (ONLY )?\S+ USING ", f' ON "{table}" USING ', definition, count=1))
    cursor.execute(f'CREATE SEQUENCE "{table}_id_seq" OWNED BY "{table}"."id"')
    cursor.execute(f"SELECT setval('\"{table}_id_seq\"', COALESCE((SELECT max(id) FROM \"{table}\"), 0) + 1, false)")
    cursor.execute(f"ALTER TABLE \"{table}\" ALTER COLUMN \"id\" SET DEFAULT nextval('\"{table}_id_seq\"')")
    if table == OUTBOX:
        cursor.execute(f"CREATE TRIGGER messaging_outbox_notify AFTER INSERT ON \"{table}\" "
                       "FOR EACH STATEMENT EXECUTE FUNCTION messaging_outbox_notify()")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, key in KEYS.items():
            old = f"{table}_unpartitioned"
            cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
            uniques, index_defs = _unique_constraints(cursor, old), _index_definitions(cursor, old)
            cursor.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE ("{key}")')
            cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "id" DROP DEFAULT')  # the old table's sequence
            for day in _days(cursor, old, key):
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                cursor.execute(f'CREATE TABLE "{table}_p{day:%Y%m%d}" PARTITION OF "{table}" '
                               f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')")
            cursor.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
            _make_again(cursor, table, key, old, uniques=uniques, index_defs=index_defs, partitioned=True)
        cursor.execute("INSERT INTO messaging_historywindow (id, oldest, newest) "
                       f"SELECT 1, min(lower_bound), max(upper_bound) FROM (SELECT "
                       f"to_date(right(c.relname, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC' AS lower_bound, "
                       f"(to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' AS upper_bound "
                       f"FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       f"WHERE i.inhparent = '{PROCESSED}'::regclass) AS days")


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DELETE FROM messaging_historywindow")
        for table, key in KEYS.items():
            old = f"{table}_partitioned"
            cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
            uniques, index_defs = _unique_constraints(cursor, old), _index_definitions(cursor, old)
            cursor.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
            cursor.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
            cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN "id" DROP DEFAULT')
            cursor.execute(f'DROP SEQUENCE IF EXISTS "{table}_id_seq" CASCADE')
            _make_again(cursor, table, key, old, uniques=uniques, index_defs=index_defs, partitioned=False)


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0011_outbox_traceparent"),
    ]

    operations = [
        migrations.AddField(
            model_name="processedmessage",
            name="message_created_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(backfill_message_created_at, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="processedmessage",
            name="message_created_at",
            field=models.DateTimeField(default=timezone.now),
        ),
        migrations.RemoveConstraint(
            model_name="processedmessage",
            name="processed_message_once",
        ),
        migrations.AddConstraint(
            model_name="processedmessage",
            constraint=models.UniqueConstraint(fields=("consumer", "message_id", "message_created_at"),
                                               name="processed_message_once"),
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(condition=models.Q(("published_at__isnull", False)), fields=["published_at", "id"],
                               name="outbox_published_idx"),
        ),
        migrations.CreateModel(
            name="HistoryWindow",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("oldest", models.DateTimeField()),
                ("newest", models.DateTimeField(help_text="the end (exclusive) of the newest partition")),
            ],
        ),
        migrations.RunPython(partition, unpartition),
    ]
