"""SIM_TIME_SCALE scales the simulated world's delays, and nothing real."""

from shop.services import payment_timeout_seconds
from simulation.clock import scaled


def test_scale_multiplies_simulated_delays_and_zero_makes_them_due_now(settings):
    settings.SIM_TIME_SCALE = 0.5
    assert scaled(3.0) == 1.5
    settings.SIM_TIME_SCALE = 0
    assert scaled(3.0) == 0


def test_the_payment_timeout_is_real_time_whatever_the_scale(settings):
    # given: the demo's world at full speed
    settings.SIM_TIME_SCALE = 0
    settings.PAYMENT_TIMEOUT_SECONDS = 30.0
    # when
    timeout = payment_timeout_seconds()
    # then
    assert timeout == 30.0
