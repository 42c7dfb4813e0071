from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from transport.services import driver_create


class Command(BaseCommand):
    help = ("Create a driver account bound to a vehicle: they record stages only for that vehicle's shipments "
            "(POST /api/shipments/<id>/stage/). Prints the API token as the last line.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--vehicle", required=True, help="the code of the vehicle they drive, e.g. VEH001")

    def handle(self, *args, username: str, vehicle: str, **options):
        if not username.strip() or len(username) > 150:
            raise CommandError("username must be 1-150 characters")
        try:
            driver, token = driver_create(username=username, vehicle_code=vehicle)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"driver {driver.user.username} created, driving {driver.vehicle.code}")
        self.stdout.write(token)
