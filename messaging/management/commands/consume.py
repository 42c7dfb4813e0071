from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.consumer import QueueWorker
from messaging.registry import route_for


class Command(BaseCommand):
    help = "Run the worker for one queue until stopped (SIGTERM/Ctrl-C hand unacked work back)."

    def add_arguments(self, parser):
        parser.add_argument("queue")
        parser.add_argument("--prefetch", type=int, default=None)
        parser.add_argument("--max-messages", type=int, default=None)
        parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")

    def handle(self, *args, queue: str, **options):
        try:
            route_for(queue)
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        prefetch = options["prefetch"] or settings.MESSAGING["PREFETCH"]
        if prefetch < 1:
            raise CommandError("--prefetch must be at least 1")
        stats = QueueWorker(queue, prefetch=prefetch).run(
            max_messages=options["max_messages"], idle_exit_seconds=options["idle_exit"]
        )
        self.stdout.write(
            f"worker {queue} stopped: handled={stats.handled} duplicates={stats.duplicates} "
            f"retried={stats.retried} parked={stats.parked}"
        )
