"""config/ is the ground floor: it imports no app, and importing its settings only reads."""

from __future__ import annotations

import ast
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

CONFIG = Path(settings.BASE_DIR) / "config"
ENVIRONMENT_READ_BY_SETTINGS = ("DJANGO_", "DATABASE_URL", "RABBITMQ_URL", "PROMETHEUS_MULTIPROC_DIR", "SIM_",
                                "TUTORIAL_", "PAYMENT_")


def project_apps() -> set[str]:
    """The apps of this project (the installed apps that are folders of the checkout)."""
    return {app for app in settings.INSTALLED_APPS if "." not in app and (Path(settings.BASE_DIR) / app).is_dir()}


def imported_modules(source: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_config_imports_no_app():
    # given
    apps = project_apps()
    assert {"shop", "warehouse", "transport", "support", "payments", "messaging", "observability",
            "simulation"} <= apps
    # when
    reaching_up = sorted(
        f"{source.name} imports {module}"
        for source in CONFIG.glob("*.py")
        for module in imported_modules(source)
        if module.split(".")[0] in apps
    )
    # then
    assert reaching_up == []


def settings_import(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Import a copy of config/settings.py whose checkout is ``root``, in a fresh interpreter with
    ``env`` only; it prints the environment variables that the import changed."""
    script = (
        "import os; before = dict(os.environ); import config.settings; "
        "print(sorted(k for k in {*before, *os.environ} if before.get(k) != os.environ.get(k)))"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=root, env={**env, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=60)


def checkout_copy(root: Path) -> Path:
    (root / "config").mkdir()
    shutil.copy(CONFIG / "__init__.py", root / "config" / "__init__.py")
    shutil.copy(CONFIG / "settings.py", root / "config" / "settings.py")
    shutil.copy(CONFIG / "database_url.py", root / "config" / "database_url.py")
    return root


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if "__pycache__" not in path.parts)


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that settings read."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENVIRONMENT_READ_BY_SETTINGS)}


def test_importing_settings_writes_no_file_and_changes_no_environment(tmp_path):
    # given: a checkout with its secret key and nothing else
    root = checkout_copy(tmp_path)
    (root / ".secret_key").write_text("k" * 50)
    before = files_under(root)
    # when
    result = settings_import(root, clean_environment())
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert files_under(root) == before


def test_settings_take_the_secret_key_from_the_environment_first(tmp_path):
    # given: no key file at all
    root = checkout_copy(tmp_path)
    env = {**clean_environment(), "DJANGO_SECRET_KEY": "from-the-environment"}
    script = "import config.settings as s; print(s.SECRET_KEY)"
    # when
    result = subprocess.run([sys.executable, "-c", script], cwd=root, env={**env, "PYTHONPATH": str(root)},
                            capture_output=True, text=True, timeout=60)
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-the-environment"
    assert not (root / ".secret_key").exists()


def test_without_a_secret_key_settings_say_to_run_make_install(tmp_path):
    # given: neither DJANGO_SECRET_KEY nor .secret_key
    root = checkout_copy(tmp_path)
    before = files_under(root)
    # when
    result = settings_import(root, clean_environment())
    # then
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: no secret key: set DJANGO_SECRET_KEY, "
        f"or run `make install` (it writes {root / '.secret_key'})")
    assert files_under(root) == before


def test_ensure_secret_key_writes_a_private_key_once(tmp_path):
    # given: a checkout without a key
    (tmp_path / "scripts").mkdir()
    script = shutil.copy(Path(settings.BASE_DIR) / "scripts" / "ensure_secret_key.sh", tmp_path / "scripts")
    # when: run twice
    subprocess.run([script], check=True, capture_output=True, timeout=60)
    first = (tmp_path / ".secret_key").read_text()
    subprocess.run([script], check=True, capture_output=True, timeout=60)
    # then: one key, readable by its owner only, kept
    assert len(first.strip()) >= 50
    assert (tmp_path / ".secret_key").read_text() == first
    assert (tmp_path / ".secret_key").stat().st_mode & 0o777 == 0o600
    assert files_under(tmp_path) == [".secret_key", "scripts", "scripts/ensure_secret_key.sh"]


def test_the_test_settings_add_only_what_a_test_run_needs():
    # then: the production settings, plus the test client's host, per-run folders and the SQLite alias
    assert settings.SETTINGS_MODULE == "tests.settings"
    assert settings.ALLOWED_HOSTS[-1] == "testserver"
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert Path(settings.API_THROTTLE_DIR).parent == Path(settings.BASE_DIR) / ".run" / "throttle-test"
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == settings.PROMETHEUS_MULTIPROC_DIR
    sqlite = settings.DATABASES["sqlite"]
    assert sqlite["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(sqlite["NAME"]).parent == Path(settings.BASE_DIR) / ".run"
    assert Path(sqlite["TEST"]["NAME"]).parent == Path(settings.BASE_DIR) / ".run"


@pytest.mark.django_db(databases=["default", "sqlite"])
def test_the_sqlite_alias_is_a_migrated_test_database_in_a_file():
    # given
    sqlite = connections["sqlite"]
    # when
    with sqlite.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'django_migrations'")
        tables = cursor.fetchall()
    # then
    assert sqlite.vendor == "sqlite"
    assert sqlite.settings_dict["NAME"] == settings.DATABASES["sqlite"]["TEST"]["NAME"]
    assert Path(sqlite.settings_dict["NAME"]).is_file()
    assert tables == [("django_migrations",)]


def test_the_web_process_warms_up_in_gunicorn_not_in_config():
    # given
    procfile = (Path(settings.BASE_DIR) / "Procfile").read_text().splitlines()
    conf = runpy.run_path(str(Path(settings.BASE_DIR) / "gunicorn.conf.py"))
    # when: gunicorn's hook, as a worker runs it once the application is loaded
    conf["post_worker_init"](None)
    # then
    assert "web: gunicorn -c gunicorn.conf.py config.wsgi:application" in procfile
    assert "post_worker_init" not in (CONFIG / "wsgi.py").read_text()
