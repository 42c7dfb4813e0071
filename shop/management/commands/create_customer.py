from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from config.errors import DomainError
from shop.services import customer_create


class Command(BaseCommand):
    help = "Create a customer account; prints its API token as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--name", default="")

    def handle(self, *args, username: str, email: str, name: str, **options):
        if not username.strip() or len(username) > 150:
            raise CommandError("username must be 1-150 characters")
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise CommandError(f"not an email address: {email!r}") from None
        try:
            customer, token = customer_create(username=username, email=email, name=name)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"customer {customer.name} created")
        self.stdout.write(token)
