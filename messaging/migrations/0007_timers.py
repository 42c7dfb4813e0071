"""Timers are outbox rows with a due time.

* ``OutboxMessage.due_at``: a timer's due time (kept for the journey; ``next_attempt_at``
  holds "not before" and a refused row's retry overwrites it).
* ``OutboxPending.next_attempt_at`` is always filled in by the triggers: the outbox row's
  ``next_attempt_at``, else its ``created_at``. The relay leases in (next_attempt_at,
  outbox_id) order through an index, so rows not due yet (100,000 timers due tomorrow, say)
  are never read by a lease, and the first entry tells an idle relay when to wake up.
"""

import importlib

from django.db import migrations, models

_0006 = importlib.import_module("messaging.migrations.0006_outbox_pending")

OUTBOX = _0006.OUTBOX
PENDING = _0006.PENDING

POSTGRESQL_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION messaging_outbox_pending_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {PENDING} (outbox_id, next_attempt_at)
        SELECT id, coalesce(next_attempt_at, created_at) FROM new_rows WHERE published_at IS NULL;
    IF FOUND THEN
        PERFORM pg_notify('outbox', '');  -- delivered on commit, once per transaction
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION messaging_outbox_pending_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM messaging_outbox_pending_remove(ARRAY(SELECT id FROM new_rows WHERE published_at IS NOT NULL));
    INSERT INTO {PENDING} (outbox_id, next_attempt_at)
        SELECT id, coalesce(next_attempt_at, created_at) FROM new_rows WHERE published_at IS NULL
        ON CONFLICT (outbox_id) DO UPDATE SET next_attempt_at = EXCLUDED.next_attempt_at;
    IF FOUND THEN
        PERFORM pg_notify('outbox', '');
    END IF;
    RETURN NULL;
END
$$;
"""

SQLITE_CREATE = [
    f"""
CREATE TRIGGER messaging_outbox_pending_insert AFTER INSERT ON {OUTBOX}
FOR EACH ROW WHEN NEW.published_at IS NULL
BEGIN
    INSERT INTO {PENDING} (outbox_id, next_attempt_at) VALUES (NEW.id, coalesce(NEW.next_attempt_at, NEW.created_at));
END
""",
    f"""
CREATE TRIGGER messaging_outbox_pending_update AFTER UPDATE ON {OUTBOX}
FOR EACH ROW
BEGIN
    DELETE FROM {PENDING} WHERE outbox_id = NEW.id AND NEW.published_at IS NOT NULL;
    INSERT INTO {PENDING} (outbox_id, next_attempt_at)
        SELECT NEW.id, coalesce(NEW.next_attempt_at, NEW.created_at) WHERE NEW.published_at IS NULL
        ON CONFLICT (outbox_id) DO UPDATE SET next_attempt_at = excluded.next_attempt_at;
END
""",
    _0006.SQLITE_CREATE[2],
]

BACKFILL = (f"UPDATE {PENDING} SET next_attempt_at = (SELECT created_at FROM {OUTBOX} o WHERE o.id = outbox_id) "
            "WHERE next_attempt_at IS NULL")


def forwards(apps, schema_editor):
    schema_editor.execute(BACKFILL)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_FUNCTIONS)
    else:
        for sql in _0006.SQLITE_DROP + SQLITE_CREATE:
            schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in _0006.POSTGRESQL_DROP[:1] + _0006.POSTGRESQL_CREATE[1:5]:
            schema_editor.execute(sql)
    else:
        for sql in _0006.SQLITE_DROP + _0006.SQLITE_CREATE:
            schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0006_outbox_pending"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="due_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="outboxpending",
            index=models.Index(fields=["next_attempt_at", "outbox"], name="outbox_pending_due_idx"),
        ),
        migrations.RunPython(forwards, backwards),
    ]
