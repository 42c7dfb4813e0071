from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.services import messages_prune


class Command(BaseCommand):
    help = "Delete published outbox rows and processed-message records older than the retention."

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=float, default=None,
                            help=f"default OUTBOX_RETENTION_DAYS ({settings.OUTBOX_RETENTION_DAYS})")

    def handle(self, *args, **options):
        days = settings.OUTBOX_RETENTION_DAYS if options["older_than_days"] is None else options["older_than_days"]
        if days < 1:
            raise CommandError("--older-than-days must be at least 1: a redelivered message must still find "
                               "its processed record")
        outbox, processed = messages_prune(older_than_days=days)
        self.stdout.write(f"pruned {outbox} published outbox rows and {processed} processed-message records "
                          f"older than {days:g} days")
