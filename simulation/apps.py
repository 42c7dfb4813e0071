from django.apps import AppConfig
from django.conf import settings


class SimulationConfig(AppConfig):
    """The demo's world. Installed always (it has no models): its commands, ``demo`` and the
    contract's ``load_demo_data``, answer from a bare ``manage.py``; its actors' queue and
    handlers exist only when ``SIM_ACTORS`` is on."""

    name = "simulation"
    verbose_name = "Simulation (demo actors, demo data)"

    def ready(self):
        from simulation import checks  # noqa: F401 - check --deploy names what of the demo is on

        if settings.SIM_ACTORS:
            from messaging import topology
            from simulation import actors

            topology.queue_add(actors.SIM_ACTORS, subscriptions=actors.SUBSCRIPTIONS)
