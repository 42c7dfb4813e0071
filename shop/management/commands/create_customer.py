import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from config.errors import DomainError
from shop.services import customer_create

ASK = object()  # --password given without a value


class Command(BaseCommand):
    help = ("Create a customer account; prints its API token as the last line. With --password the "
            "customer can also sign in (POST /api/auth/token/, the browsable API's login).")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--password", nargs="?", const=ASK, default=None,
            help="the customer's password; without a value it is asked for (or read as one line from standard "
                 "input when that is no terminal), which keeps it out of the shell history and process list")

    def handle(self, *args, username: str, email: str, name: str, password, **options):
        if not username.strip() or len(username) > 150:
            raise CommandError("username must be 1-150 characters")
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise CommandError(f"not an email address: {email!r}") from None
        if password is ASK:
            password = self._password_read()
        try:
            customer, token = customer_create(username=username, email=email, name=name, password=password)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"customer {customer.name} created" + (" (with a password)" if password else ""))
        self.stdout.write(token)

    def _password_read(self) -> str:
        if sys.stdin.isatty():
            first, again = getpass.getpass("Password: "), getpass.getpass("Password (again): ")
            if first != again:
                raise CommandError("the passwords differ")
            return first
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise CommandError("--password without a value reads it from standard input, which was empty")
        return line
