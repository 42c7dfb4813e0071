"""django-q2's qcluster, with the scheduler looked at every SIM_SCHEDULER_TICK seconds.

django-q2's sentinel runs the scheduler once every 30 s, which would turn a 1-3 s transit
stage into a 30 s one. This command starts the same cluster (workers, monitor, pusher)
and runs django-q2's own ``scheduler()`` on a short tick from the main process, together
with, every half second, the shop's payment clock (``payment_deadlines_enforce``: one
indexed query instead of a scheduled task per order) and customer service's mail outbox
(``notifications_send``: the customer notifications not mailed yet).
"""

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.cluster import Cluster
from django_q.models import Schedule
from django_q.scheduler import scheduler

from config.rows import statement_cursor
from shop.services import payment_deadlines_enforce
from support.services import notifications_send

logger = logging.getLogger("simulation.qcluster")

# How often the payment clock and the mail outbox are swept (the scheduler looks every tick).
SWEEP_SECONDS = 0.5


def schedules_due() -> bool:
    """Whether django-q2's ``scheduler()`` would find a schedule to run now (or maybe would).

    One precompiled ``SELECT ... LIMIT 1`` per tick (ten a second), where the scheduler
    itself builds an ORM query and opens a transaction on every call, which made an idle
    qcluster's main process a few percent of a core. Ignores the schedule's cluster: a
    superset of what the scheduler runs, so nothing it would run is skipped.
    """
    cursor = statement_cursor()
    cursor.execute(_DUE_SQL, [connection.ops.adapt_datetimefield_value(timezone.now())])  # as the ORM would send it
    return cursor.fetchone() is not None


_DUE_SQL = f"SELECT 1 FROM {Schedule._meta.db_table} WHERE repeats <> 0 AND next_run < %s LIMIT 1"


class Command(BaseCommand):
    help = "Start the django-q2 cluster that runs the timed simulation steps (picking, transit)."

    def add_arguments(self, parser):
        parser.add_argument("--run-once", action="store_true", help="start, run due schedules once, stop")

    def handle(self, *args, **options):
        settings.SECRET_KEY  # the cluster signs tasks with it
        # A step lost to a crash (say a worker killed mid-task) is found and replayed.
        Schedule.objects.update_or_create(
            name="stalled-steps-resume",
            defaults={"func": "simulation.tasks.stalled_steps_resume", "schedule_type": Schedule.MINUTES,
                      "minutes": 1, "repeats": -1},
        )
        # Published outbox rows and old processed records do not pile up.
        Schedule.objects.update_or_create(
            name="messages-prune",
            defaults={"func": "messaging.tasks.messages_prune_daily", "schedule_type": Schedule.DAILY,
                      "repeats": -1},
        )
        broker = get_broker()
        cluster = Cluster(broker)
        # The cluster's processes inherit a blocked SIGTERM/SIGINT: a signal sent to the whole
        # process group (honcho, systemd, a terminal's Ctrl-C) reaches only this process, which
        # stops the cluster in order. django-q2's sentinel would otherwise die on it mid-shutdown
        # while holding the stop event's lock, and this process would wait for it forever.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            cluster.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        tick = settings.SIM_SCHEDULER_TICK
        sweep_due = 0.0
        try:
            while cluster.stop_event is not None and cluster.sentinel.is_alive():
                try:
                    if schedules_due():
                        scheduler(broker=broker)
                    if time.monotonic() >= sweep_due:
                        # The payment clock and the mail outbox need no 0.1 s precision: swept
                        # less often, an idle scheduler costs a third of the CPU it did.
                        sweep_due = time.monotonic() + SWEEP_SECONDS
                        payment_deadlines_enforce()
                        notifications_send(limit=1000)
                except DatabaseError as exc:
                    logger.warning("scheduler tick failed (%r); next tick retries", exc)
                    close_old_connections()
                if options["run_once"]:
                    break
                time.sleep(tick)
        finally:
            if cluster.stop_event is not None:
                cluster.stop()
