"""API tokens move from DRF's table (plain keys) to django-rest-knox's (hashed, with an expiry).

Each existing customer's or driver's token keeps working, unchanged, until API_TOKEN_TTL_DAYS
after this migration: its key is hashed into knox's table and the plain key is deleted. Staff
tokens are not carried over (staff use the admin and the session). DRF's authtoken app is no
longer installed; its table, if there is one, is left empty.
"""

from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone

LEGACY_TABLE = "authtoken_token"


def tokens_to_knox(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    AuthToken = apps.get_model("knox", "AuthToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id FROM {LEGACY_TABLE}")
        rows = cursor.fetchall()
    users = User.objects.in_bulk([user_id for _key, user_id in rows])
    expiry = timezone.now() + timedelta(days=getattr(settings, "API_TOKEN_TTL_DAYS", 30.0))
    AuthToken.objects.bulk_create([
        AuthToken(user_id=user_id, digest=hash_token(key), token_key=key[:CONSTANTS.TOKEN_KEY_LENGTH], expiry=expiry)
        for key, user_id in rows
        if user_id in users and not (users[user_id].is_staff or users[user_id].is_superuser)])
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {LEGACY_TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0006_order_cancel_permission"),
        ("knox", "0009_extend_authtoken_field"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(tokens_to_knox, migrations.RunPython.noop)]
