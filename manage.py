#!/usr/bin/env python
import os
import sys

# `manage.py demo` asks for the demo's world: simulated actors and the simulated payment provider
# (the product's defaults are production's: neither). The processes it starts inherit them.
DEMO_WORLD = {"SIM_ACTORS": "1", "PAYMENT_PROVIDER": "simulated"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] == ["demo"]:
        for name, value in DEMO_WORLD.items():
            os.environ.setdefault(name, value)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
