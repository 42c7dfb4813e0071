"""NOTIFY outbox from a statement-level trigger on PostgreSQL.

Writers used to send ``NOTIFY outbox`` themselves: one more round trip per transaction. The
trigger sends it as part of the insert; PostgreSQL still delivers it only on commit, and once
per transaction however many rows (or statements) the transaction writes. SQLite has no
NOTIFY: there the relay polls, and this migration does nothing.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION messaging_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER messaging_outbox_notify AFTER INSERT ON messaging_outboxmessage
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_outbox_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS messaging_outbox_notify ON messaging_outboxmessage;
DROP FUNCTION IF EXISTS messaging_outbox_notify();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("messaging", "0003_deadletter_dead_letter_once_per_message"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
