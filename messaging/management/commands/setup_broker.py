from django.core.management.base import BaseCommand, CommandError

from messaging import broker, topology


class Command(BaseCommand):
    help = ("Declare the whole RabbitMQ topology (exchanges, quorum queues, retry and dead-letter queues). "
            "Idempotent. --migrate moves queues of an earlier version (classic queues) to quorum queues, "
            "their messages kept.")

    def add_arguments(self, parser):
        parser.add_argument("--migrate", action="store_true",
                            help="move each queue declared with other arguments (a classic queue) to a new "
                                 "quorum queue of the same name, its messages kept; stop the workers first")

    def handle(self, *args, migrate: bool = False, **options):
        try:
            connection = broker.connect()
        except Exception as exc:
            raise CommandError(f"RabbitMQ is not reachable at RABBITMQ_URL: {exc!r}") from exc
        try:
            if migrate:
                moved = topology.migrate(connection, log=lambda line: self.stdout.write(line))
                if moved:
                    self.stdout.write(f"migrated {len(moved)} queues, {sum(moved.values())} messages moved")
            else:
                topology.declare(connection.channel())
        except (topology.QueueOutdated, topology.QueueInUse, topology.QueueNotEmpty) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if connection.is_open:
                connection.close()
        names = topology.all_queue_names()
        self.stdout.write(self.style.SUCCESS(f"declared {len(names)} queues: {', '.join(names)}"))
