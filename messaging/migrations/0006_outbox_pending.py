"""The relay's work list (OutboxPending), kept by triggers; no index names ``published_at``.

Until now a partial index (``id WHERE published_at IS NULL``) listed the unpublished rows.
An index that names a column, even only in its predicate, rules out HOT updates of that
column, so each publish mark wrote a new entry into every index of the outbox, two of them
on random ids (message, order): with a million published rows in the table the relay
drained 14% slower than on an empty one. Now:

* ``messaging_outboxpending`` lists the unpublished rows. Triggers keep it in step with the
  outbox, whoever writes: an unpublished row inserted is listed; setting ``published_at``
  (the relay's mark), deleting the row or truncating the outbox takes it off;
  ``next_attempt_at`` is copied over.
  On PostgreSQL they are statement triggers over transition tables, one call per statement
  however many rows (the insert trigger also sends ``NOTIFY outbox``, which replaces the
  trigger of migration 0004); on SQLite, row triggers.
* The outbox keeps room on each page for a second version of its rows (``fillfactor``), so
  that the mark can be a HOT update: no index touched.

SQLite rebuilds a table for some schema changes (and drops its triggers): a later migration
that does so to the outbox must create these triggers again.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

_0004_sql = importlib.import_module("messaging.migrations.0004_outbox_notify_trigger")  # its trigger's SQL

OUTBOX = "messaging_outboxmessage"
PENDING = "messaging_outboxpending"
# More than half of each page left free when rows are inserted, so that every row on it can
# get its second version there (at 50 the page header and line pointers left the last row of
# a page without room, now and then).
FILLFACTOR = 45

POSTGRESQL_CREATE = [
    _0004_sql.DROP,
    f"""
CREATE FUNCTION messaging_outbox_pending_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {PENDING} (outbox_id, next_attempt_at)
        SELECT id, next_attempt_at FROM new_rows WHERE published_at IS NULL;
    IF FOUND THEN
        PERFORM pg_notify('outbox', '');  -- delivered on commit, once per transaction
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER messaging_outbox_pending_insert AFTER INSERT ON {OUTBOX}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messaging_outbox_pending_insert();
""",
    # EXECUTE: planned for the ids at hand each time (a plan cached while the table was small
    # could scan it whole once it is not).
    f"""
CREATE FUNCTION messaging_outbox_pending_remove(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(ids) > 0 THEN
        EXECUTE 'DELETE FROM {PENDING} WHERE outbox_id = ANY($1)' USING ids;
    END IF;
END
$$;
CREATE FUNCTION messaging_outbox_pending_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM messaging_outbox_pending_remove(ARRAY(SELECT id FROM new_rows WHERE published_at IS NOT NULL));
    INSERT INTO {PENDING} (outbox_id, next_attempt_at)
        SELECT id, next_attempt_at FROM new_rows WHERE published_at IS NULL
        ON CONFLICT (outbox_id) DO UPDATE SET next_attempt_at = EXCLUDED.next_attempt_at;
    IF FOUND THEN
        PERFORM pg_notify('outbox', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER messaging_outbox_pending_update AFTER UPDATE ON {OUTBOX}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messaging_outbox_pending_update();
""",
    f"""
CREATE FUNCTION messaging_outbox_pending_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM messaging_outbox_pending_remove(ARRAY(SELECT id FROM old_rows WHERE published_at IS NULL));
    RETURN NULL;
END
$$;
CREATE TRIGGER messaging_outbox_pending_delete AFTER DELETE ON {OUTBOX}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION messaging_outbox_pending_delete();
""",
    # An entry whose outbox row is gone would be leased first again and again, and a batch's
    # worth of them would stop the relay: a TRUNCATE of the outbox empties the list too (by a
    # DELETE: the TRUNCATE may be truncating the list in the same statement, Django's flush does).
    f"""
CREATE FUNCTION messaging_outbox_pending_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {PENDING};
    RETURN NULL;
END
$$;
CREATE TRIGGER messaging_outbox_pending_truncate AFTER TRUNCATE ON {OUTBOX}
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_outbox_pending_truncate();
""",
    f"ALTER TABLE {OUTBOX} SET (fillfactor = {FILLFACTOR})",
]

POSTGRESQL_DROP = [
    f"""
DROP TRIGGER IF EXISTS messaging_outbox_pending_insert ON {OUTBOX};
DROP TRIGGER IF EXISTS messaging_outbox_pending_update ON {OUTBOX};
DROP TRIGGER IF EXISTS messaging_outbox_pending_delete ON {OUTBOX};
DROP TRIGGER IF EXISTS messaging_outbox_pending_truncate ON {OUTBOX};
DROP FUNCTION IF EXISTS messaging_outbox_pending_insert();
DROP FUNCTION IF EXISTS messaging_outbox_pending_update();
DROP FUNCTION IF EXISTS messaging_outbox_pending_delete();
DROP FUNCTION IF EXISTS messaging_outbox_pending_remove(bigint[]);
DROP FUNCTION IF EXISTS messaging_outbox_pending_truncate();
""",
    f"ALTER TABLE {OUTBOX} RESET (fillfactor)",
    _0004_sql.CREATE,
]

SQLITE_CREATE = [
    f"""
CREATE TRIGGER messaging_outbox_pending_insert AFTER INSERT ON {OUTBOX}
FOR EACH ROW WHEN NEW.published_at IS NULL
BEGIN
    INSERT INTO {PENDING} (outbox_id, next_attempt_at) VALUES (NEW.id, NEW.next_attempt_at);
END
""",
    f"""
CREATE TRIGGER messaging_outbox_pending_update AFTER UPDATE ON {OUTBOX}
FOR EACH ROW
BEGIN
    DELETE FROM {PENDING} WHERE outbox_id = NEW.id AND NEW.published_at IS NOT NULL;
    INSERT INTO {PENDING} (outbox_id, next_attempt_at) SELECT NEW.id, NEW.next_attempt_at WHERE NEW.published_at IS NULL
        ON CONFLICT (outbox_id) DO UPDATE SET next_attempt_at = excluded.next_attempt_at;
END
""",
    f"""
CREATE TRIGGER messaging_outbox_pending_delete AFTER DELETE ON {OUTBOX}
FOR EACH ROW
BEGIN
    DELETE FROM {PENDING} WHERE outbox_id = OLD.id;
END
""",
]

SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS messaging_outbox_pending_{event}" for event in ("insert", "update", "delete")
]

BACKFILL = (f"INSERT INTO {PENDING} (outbox_id, next_attempt_at) "
            f"SELECT id, next_attempt_at FROM {OUTBOX} WHERE published_at IS NULL")


def create(apps, schema_editor):
    statements = POSTGRESQL_CREATE if schema_editor.connection.vendor == "postgresql" else SQLITE_CREATE
    schema_editor.execute(BACKFILL)
    for sql in statements:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    statements = POSTGRESQL_DROP if schema_editor.connection.vendor == "postgresql" else SQLITE_DROP
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0005_leaner_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='OutboxPending',
            fields=[
                ('outbox', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='pending', serialize=False, to='messaging.outboxmessage')),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.RemoveIndex(
            model_name='outboxmessage',
            name='outbox_unpublished_idx',
        ),
        migrations.RunPython(create, drop),
    ]
