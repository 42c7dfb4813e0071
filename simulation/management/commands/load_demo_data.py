from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from shop.services import product_upsert
from simulation.demo_data import PRODUCTS, VEHICLES
from transport.services import vehicle_upsert
from warehouse.services import stock_item_upsert


class Command(BaseCommand):
    help = "Load the seed's catalogue, stock and vehicles (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--stock", type=int, default=None, help="set every product's stock to N")

    def handle(self, *args, **options):
        stock_override = options["stock"]
        if stock_override is not None and not 0 <= stock_override <= 10_000_000:
            raise CommandError("--stock must be between 0 and 10000000")
        with transaction.atomic():
            for sku, name, price, location, stock in PRODUCTS:
                product_upsert(sku=sku, name=name, price=price)
                stock_item_upsert(sku=sku, name=name, location=location,
                                  quantity_on_hand=stock if stock_override is None else stock_override)
            for code, vehicle_type, location in VEHICLES:
                vehicle_upsert(code=code, type=vehicle_type, location=location)
        self.stdout.write(self.style.SUCCESS(
            f"demo data: {len(PRODUCTS)} products, stock {'seed' if stock_override is None else stock_override}, "
            f"{len(VEHICLES)} vehicles"
        ))
