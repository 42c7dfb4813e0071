from django.core.management.base import BaseCommand, CommandError

from messaging import broker, topology


class Command(BaseCommand):
    help = "Declare the whole RabbitMQ topology (exchanges, queues, retry and dead-letter queues). Idempotent."

    def handle(self, *args, **options):
        try:
            connection = broker.connect()
        except Exception as exc:
            raise CommandError(f"RabbitMQ is not reachable at RABBITMQ_URL: {exc!r}") from exc
        try:
            topology.declare(connection.channel())
        finally:
            connection.close()
        names = topology.all_queue_names()
        self.stdout.write(self.style.SUCCESS(f"declared {len(names)} queues: {', '.join(names)}"))
