from django.apps import AppConfig
from django.conf import settings


class SimulationConfig(AppConfig):
    name = "simulation"
    verbose_name = "Simulation (demo actors, demo data)"

    def ready(self):
        if settings.SIM_ACTORS:
            from messaging import topology
            from simulation import actors

            topology.queue_add(actors.SIM_ACTORS, subscriptions=actors.SUBSCRIPTIONS)
