"""Two versions of the project side by side: each with its own checkout, virtualenv, PostgreSQL
database and RabbitMQ vhost, driven only through what a deployment uses (its manage.py commands,
its Procfile, its HTTP API) so that one harness measures both the same way.

The current checkout is one version; an earlier commit (``--reference 4c66d6f``) is checked out
with ``git worktree add`` into ``.run/reference/<commit>`` (ignored by git, reused by the next run)
and gets a virtualenv of its own only when its requirements are not a subset of this one's.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlparse, urlunparse

from bench.common import BENCH_DB, ROOT

REFERENCE_DIR = ROOT / ".run" / "reference"
# Tables a fresh deployment has filled by ``migrate`` alone: kept by a reset (migrate runs again after it).
KEPT_TABLES = ("django_migrations", "django_content_type", "auth_permission", "auth_group",
               "auth_group_permissions", "django_site")
COMMAND_TIMEOUT = 600  # seconds for one management command (a first migrate of a database)


@dataclass
class Version:
    """One version of the project, ready to start: its checkout, python, database and vhost."""

    label: str
    commit: str  # the full hash (the current checkout: HEAD, plus "+changes" when it has some)
    root: Path
    python: Path  # a virtualenv's bin/python (not resolved: the symlink is what makes it the venv's)
    database_url: str
    rabbitmq_url: str

    @property
    def database(self) -> str:
        return urlparse(self.database_url).path.lstrip("/")

    @property
    def vhost(self) -> str:
        return unquote(urlparse(self.rabbitmq_url).path.lstrip("/"))

    def env(self) -> dict[str, str]:
        """What this version's processes get on top of the harness's environment."""
        return {
            "DATABASE_URL": self.database_url,
            "RABBITMQ_URL": self.rabbitmq_url,
            "PATH": f"{self.python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(self.python.parent.parent),
            # a one-node deployment's default for both (request limits in files on the machine);
            # BENCH_REDIS_URL gives both the current version's shared Redis (the reference may ignore it)
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", ""),
            # the demo's world, named so that every version understands it (the short name
            # "simulated" is newer than some references)
            "SIM_ACTORS": "1",
            "PAYMENT_PROVIDER": "payments.provider.SimulatedPaymentProvider",
        }

    def manage(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run one of this version's management commands to its end; its standard output."""
        done = subprocess.run([str(self.python), "manage.py", *args], cwd=self.root,
                              env={**os.environ, **self.env(), "LOG_LEVEL": "WARNING"},
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{self.label}: manage.py {' '.join(args)} exited {done.returncode}:\n"
                               f"{done.stdout[-2000:]}{done.stderr[-4000:]}")
        return done.stdout

    def describe(self) -> dict[str, str]:
        return {"commit": self.commit, "root": str(self.root), "python": str(self.python),
                "database": self.database, "vhost": self.vhost}


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=300).stdout.strip()


def _url_with_database(url: str, name: str) -> str:
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


def _url_with_vhost(url: str, vhost: str) -> str:
    return urlunparse(urlparse(url)._replace(path=f"/{quote(vhost, safe='')}"))


def base_vhost() -> str:
    """The vhost of RABBITMQ_URL (make bench's own); never ``/``, which belongs to whoever runs the broker."""
    vhost = unquote(urlparse(os.environ.get("RABBITMQ_URL", "")).path.lstrip("/"))
    if vhost in ("", "/"):
        raise SystemExit("the comparison resets vhosts: set RABBITMQ_URL to a vhost of its own, not '/' "
                         "(make bench does: logistics_bench)")
    return vhost


def current_version() -> Version:
    """This checkout, on the benchmark database and RABBITMQ_URL's vhost."""
    changed = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return Version(label="current", commit=_git("rev-parse", "HEAD") + ("+changes" if changed else ""),
                   root=ROOT, python=Path(sys.executable), database_url=os.environ["DATABASE_URL"],
                   rabbitmq_url=_url_with_vhost(os.environ["RABBITMQ_URL"], base_vhost()))


def _requirements(text: str) -> set[str]:
    """A requirements file's pins, normalised (comments and blank lines dropped)."""
    pins = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins.add(re.sub(r"\s+", "", line).lower().replace("_", "-"))
    return pins


def _reference_python(checkout: Path) -> Path:
    """This virtualenv when it holds every pin of the reference's requirements.txt; else one of
    the reference's own, made once in ``.run/reference/venv-<hash>`` and reused."""
    wanted = (checkout / "requirements.txt").read_text()
    if _requirements(wanted) <= _requirements((ROOT / "requirements.txt").read_text()):
        return Path(sys.executable)
    venv = REFERENCE_DIR / f"venv-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(checkout / "requirements.txt")],
                       check=True, timeout=1200)
        (venv / ".installed").touch()
    return python


def reference_checkout(ref: str) -> tuple[str, Path]:
    """A worktree of ``ref`` in ``.run/reference/<commit>`` (made once, reused while it is clean)."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    path = REFERENCE_DIR / commit[:12]
    if path.exists():
        try:
            clean = _git("rev-parse", "HEAD", cwd=path) == commit and not _git("status", "--porcelain", cwd=path)
        except subprocess.CalledProcessError:
            clean = False
        if clean:
            return commit, path
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, timeout=120,
                       capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=True, timeout=120)
    _git("worktree", "add", "--detach", str(path), commit)
    return commit, path


def reference_version(ref: str) -> Version:
    commit, checkout = reference_checkout(ref)
    return Version(label="reference", commit=commit, root=checkout, python=_reference_python(checkout),
                   database_url=_url_with_database(os.environ["DATABASE_URL"], f"{BENCH_DB}_ref_{commit[:7]}"),
                   rabbitmq_url=_url_with_vhost(os.environ["RABBITMQ_URL"], f"{base_vhost()}_ref_{commit[:7]}"))


# --- the database and the broker of a version ---------------------------------------------------

def _psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgres://", 1)


def database_prepare(version: Version) -> None:
    """The version's database exists and has its own schema (its migrations)."""
    from bench.common import _database_create

    _database_create(_psycopg_url(version.database_url), version.database)
    version.manage("migrate", "--noinput", "-v0")


def database_reset(version: Version) -> None:
    """Every table emptied but those ``migrate`` fills, then ``migrate`` again (a no-op but for its
    post-migrate steps: the housekeeping schedules), as a fresh deployment starts."""
    import psycopg

    with psycopg.connect(_psycopg_url(version.database_url), autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND c.relname <> ALL(%s) ORDER BY 1", (list(KEPT_TABLES),))]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    version.manage("migrate", "--noinput", "-v0")


def _rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if not shutil.which("rabbitmqctl"):
        raise SystemExit("the comparison makes a vhost per version with rabbitmqctl, which is not on PATH")
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=check)


def broker_reset(version: Version) -> None:
    """The version's vhost made afresh (every queue and message of an earlier run gone), then its
    own ``setup_broker``."""
    vhost = version.vhost
    if vhost in ("", "/"):
        raise RuntimeError("refusing to reset the vhost '/'")
    user = unquote(urlparse(version.rabbitmq_url).username or "guest")
    _rabbitmqctl("delete_vhost", vhost, check=False)
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    version.manage("setup_broker", timeout=120)


def broker_connections(version: Version) -> int:
    """Connections the broker holds in the version's vhost (0 once everything started has stopped)."""
    done = _rabbitmqctl("list_connections", "vhost", check=False)
    return sum(1 for line in done.stdout.splitlines() if line.strip() == version.vhost)


def customers_create(version: Version, count: int) -> list[str]:
    """``count`` customers made with the version's ``create_customer`` (in parallel); their API tokens."""
    def one(i: int) -> str:
        out = version.manage("create_customer", f"client{i}", "--email", f"c{i}@example.com", timeout=180)
        return out.strip().splitlines()[-1].strip()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


class DeliveredCounter:
    """How many of a list of orders are delivered, read from the version's ``shop_order`` table on
    one connection of its own (opened once: polling it costs the database one small query)."""

    def __init__(self, version: Version) -> None:
        import psycopg

        self.conn = psycopg.connect(_psycopg_url(version.database_url), autocommit=True)

    def __call__(self, order_ids: list[str]) -> int:
        row = self.conn.execute("SELECT count(*) FROM shop_order WHERE id = ANY(%s::uuid[]) AND status = 'delivered'",
                                (order_ids,)).fetchone()
        if row is None:
            raise RuntimeError("SELECT count(*) answered no row")
        return row[0]

    def close(self) -> None:
        self.conn.close()
