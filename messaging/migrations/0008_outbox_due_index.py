"""The relay's work list is a partial index of the outbox; the triggers of 0006/0007 go.

OutboxPending, a table kept in step with the outbox by triggers, let the publish mark be a HOT
update (no index named ``published_at``). Measured against a partial index on the unpublished
rows' due time, it was not worth its triggers (docs/benchmarks.md), so now:

* ``next_attempt_at`` is always filled in (the time the row was written, a timer's due time, a
  refused row's retry), and ``outbox_due_idx`` lists the unpublished rows in (next_attempt_at,
  id) order: the relay leases a range of it, the first entry tells it when the next is due;
* the outbox's only trigger is the one of migration 0004: ``NOTIFY outbox`` on insert, which
  wakes a LISTENing relay (PostgreSQL; SQLite has no NOTIFY, the relay polls there).
"""

import importlib

import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models

_0006 = importlib.import_module("messaging.migrations.0006_outbox_pending")
_0007 = importlib.import_module("messaging.migrations.0007_timers")

OUTBOX = _0006.OUTBOX


def triggers_drop(apps, schema_editor):
    # PostgreSQL: 0006's way back drops its triggers, resets the fillfactor and creates 0004's NOTIFY trigger again.
    statements = _0006.POSTGRESQL_DROP if schema_editor.connection.vendor == "postgresql" else _0006.SQLITE_DROP
    for sql in statements:
        schema_editor.execute(sql)
    schema_editor.execute(f"UPDATE {OUTBOX} SET next_attempt_at = created_at WHERE next_attempt_at IS NULL")


def triggers_create(apps, schema_editor):
    _0006.create(apps, schema_editor)
    _0007.forwards(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0007_timers"),
    ]

    operations = [
        migrations.RunPython(triggers_drop, triggers_create),
        migrations.DeleteModel(name="OutboxPending"),
        migrations.AlterField(
            model_name="outboxmessage",
            name="next_attempt_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(),
                                       default=django.utils.timezone.now),
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(condition=models.Q(("published_at__isnull", True)), fields=["next_attempt_at", "id"],
                               name="outbox_due_idx"),
        ),
    ]
