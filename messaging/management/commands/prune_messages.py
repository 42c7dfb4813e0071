from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.history import history_partitions_ensure, prune_describe
from messaging.services import messages_prune


class Command(BaseCommand):
    help = ("Let published outbox rows and processed-message records older than the retention go: on PostgreSQL "
            "whole day partitions (never one holding a pending row), on SQLite by DELETE.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=float, default=None,
                            help=f"default OUTBOX_RETENTION_DAYS ({settings.OUTBOX_RETENTION_DAYS})")

    def handle(self, *args, **options):
        days = settings.OUTBOX_RETENTION_DAYS if options["older_than_days"] is None else options["older_than_days"]
        if days < 1:
            raise CommandError("--older-than-days must be at least 1: a redelivered message must still find "
                               "its processed record")
        history_partitions_ensure()
        result = messages_prune(older_than_days=days)
        self.stdout.write(f"pruned history older than {days:g} days: {prune_describe(result)}")
