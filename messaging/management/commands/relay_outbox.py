from django.core.management.base import BaseCommand

from messaging.relay import OutboxRelay


class Command(BaseCommand):
    help = "Relay committed outbox rows to RabbitMQ with publisher confirms, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="drain what is pending and exit")
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, **options):
        stats = OutboxRelay(batch_size=options["batch_size"]).run(once=options["once"])
        self.stdout.write(f"relay stopped: published={stats.published} failed={stats.failed} batches={stats.batches}")
