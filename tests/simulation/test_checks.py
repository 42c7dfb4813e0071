"""The product's defaults are production's: the demo's world (simulated actors, the simulated
payment provider) is on only when asked for, `check --deploy` names each part that is on, and a
deployment that names no payment provider is refused at start."""

from __future__ import annotations

import json
import subprocess
import sys

from django.core.checks import run_checks

from tests.config.test_ground_floor import checkout_copy, clean_environment


class CardProcessor:
    """A deployment's own payment provider adapter, as PAYMENT_PROVIDER would name one."""


def settings_read(root, env: dict[str, str]) -> dict:
    script = ("import json, config.settings as s; "
              "print(json.dumps({'SIM_ACTORS': s.SIM_ACTORS, 'PAYMENT_PROVIDER': s.PAYMENT_PROVIDER}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env={**env, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_without_any_variable_no_simulated_actors_and_no_payment_provider(tmp_path):
    # given
    root = checkout_copy(tmp_path)
    # when
    found = settings_read(root, {**clean_environment(), "DJANGO_SECRET_KEY": "x" * 50})
    # then
    assert found == {"SIM_ACTORS": False, "PAYMENT_PROVIDER": ""}


def test_the_demo_asks_for_the_simulated_provider_by_its_short_name(tmp_path):
    # given
    root = checkout_copy(tmp_path)
    env = {**clean_environment(), "DJANGO_SECRET_KEY": "x" * 50, "SIM_ACTORS": "1", "PAYMENT_PROVIDER": "simulated"}
    # when
    found = settings_read(root, env)
    # then
    assert found == {"SIM_ACTORS": True, "PAYMENT_PROVIDER": "payments.provider.SimulatedPaymentProvider"}


def test_check_deploy_names_each_simulation_setting_that_is_on(settings):
    # given: the demo's world, as the tests run it
    settings.SIM_ACTORS = True
    settings.PAYMENT_PROVIDER = settings.SIMULATED_PAYMENT_PROVIDER
    # when
    warnings = {m.id: m.msg for m in run_checks(include_deployment_checks=True) if m.id.startswith("simulation.")}
    # then
    assert warnings == {
        "simulation.W001": "SIM_ACTORS is on: simulated warehouse staff and drivers pick and deliver every order.",
        "simulation.W002": "PAYMENT_PROVIDER is the simulated payment provider: every order is 'paid' without "
                           "money moving.",
    }


def test_check_deploy_is_quiet_about_the_simulation_when_it_is_off(settings):
    # given
    settings.SIM_ACTORS = False
    settings.PAYMENT_PROVIDER = f"{__name__}.CardProcessor"
    # when
    found = [m.id for m in run_checks(include_deployment_checks=True)
             if m.id.startswith(("simulation.", "payments."))]
    # then
    assert found == []


def test_the_simulation_warnings_are_deployment_checks_only(settings):
    settings.SIM_ACTORS = True
    assert [m.id for m in run_checks() if m.id.startswith("simulation.")] == []


def test_no_payment_provider_is_an_error_that_names_the_setting(settings):
    # given
    settings.PAYMENT_PROVIDER = ""
    # when
    errors = [(m.id, m.msg) for m in run_checks() if m.id.startswith("payments.")]
    # then
    assert errors == [("payments.E001", "PAYMENT_PROVIDER names no payment provider: orders could not be paid.")]


def test_a_payment_provider_that_cannot_be_imported_is_an_error(settings):
    settings.PAYMENT_PROVIDER = "nowhere.Provider"
    errors = [m for m in run_checks() if m.id.startswith("payments.")]
    assert [m.id for m in errors] == ["payments.E002"]
    assert errors[0].msg.startswith("PAYMENT_PROVIDER names 'nowhere.Provider', which cannot be imported: ")
