from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.consumer import QueueWorker, Worker


class Command(BaseCommand):
    help = ("Consume one or more queues in this process until stopped (SIGTERM/Ctrl-C hand unacked work "
            "back): `consume new_orders`, or a service's queues together, `consume new_orders fulfilment_requests`.")

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="+", metavar="queue")
        parser.add_argument("--prefetch", type=int, default=None, help="per queue")
        parser.add_argument("--max-messages", type=int, default=None, help="in all, then exit")
        parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")

    def handle(self, *args, queues: list[str], **options):
        prefetch = options["prefetch"] or settings.MESSAGING["PREFETCH"]
        if prefetch < 1:
            raise CommandError("--prefetch must be at least 1")
        try:
            worker = Worker([QueueWorker(queue, prefetch=prefetch) for queue in queues])
        except (LookupError, ValueError) as exc:  # a queue that does not exist, or one named twice
            raise CommandError(str(exc)) from exc
        worker.run(max_messages=options["max_messages"], idle_exit_seconds=options["idle_exit"])
        for queue_worker in worker.queue_workers:
            stats = queue_worker.stats
            self.stdout.write(
                f"worker {queue_worker.queue} stopped: handled={stats.handled} duplicates={stats.duplicates} "
                f"retried={stats.retried} parked={stats.parked}"
            )
