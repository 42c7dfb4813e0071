import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console

from simulation import demo

STOPPED = "every process the demo started was stopped"


class Command(BaseCommand):
    help = (
        "Run the whole system (the Procfile's processes, with honcho), place the seed scenario's orders through "
        "the API, show their progress live and a summary, then stop everything. Exits 0 when every order is "
        "final, the seed's order delivered, the over-stock order rejected and the others compensated."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout", type=float, default=None,
            help="seconds the orders get to become final (default 60 + 120 x SIM_TIME_SCALE: 180 at 1)",
        )
        parser.add_argument(
            "--keep-running", action="store_true",
            help="after the summary leave the system up until Ctrl-C",
        )

    def handle(self, *args, **options):
        if not settings.SIM_ACTORS:
            raise CommandError("the demo needs its simulated actors: SIM_ACTORS is off (manage.py demo turns it on "
                               "unless SIM_ACTORS is set; unset it or set it to 1)")
        timeout = options["timeout"] if options["timeout"] is not None else demo.timeout_default()
        if not 0 < timeout <= 24 * 3600:
            raise CommandError("--timeout must be between 0 and 86400 seconds")
        console = _console(no_color=options["no_color"], force_color=options["force_color"])
        try:
            demo.demo_run(console, timeout=timeout, keep_running=options["keep_running"])
        except demo.DemoError as exc:
            raise CommandError(str(exc)) from exc
        except demo.DemoInterrupted as exc:
            raise CommandError(f"{exc}; {STOPPED}", returncode=128 + exc.signum) from exc
        except KeyboardInterrupt:
            raise CommandError(f"interrupted; {STOPPED}", returncode=130) from None


def _console(*, no_color: bool, force_color: bool) -> Console:
    """Colour per Django's --no-color/--force-color (and NO_COLOR); wide enough for the tables in CI logs."""
    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = 160
    return Console(no_color=no_color or None, force_terminal=True if force_color else None, width=width,
                   highlight=False)
