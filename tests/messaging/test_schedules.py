"""Every app's housekeeping is a django-q2 schedule, written by migrate (messaging.schedules)."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

pytestmark = pytest.mark.django_db


def test_migrate_writes_every_apps_schedules_once():
    # given: a schedule changed by hand since the last migrate
    Schedule.objects.filter(name="audit").update(minutes=99)
    # when
    call_command("migrate", verbosity=0)
    # then: each app's own, with its period, and none twice
    rows = sorted(Schedule.objects.values_list("name", "func", "minutes"))
    assert rows == [
        ("audit", "observability.audit.audit_scheduled", 5),
        ("history-partitions", "messaging.tasks.history_partitions_hourly", 60),
        ("idempotency-keys-prune", "shop.tasks.idempotency_keys_prune", 60),
        ("messages-prune", "messaging.tasks.messages_prune_daily", 24 * 60),
        ("notifications-mail", "support.tasks.notifications_mail", 1),
    ]
