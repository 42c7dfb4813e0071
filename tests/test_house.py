"""The house rules, checked on the source: every room keeps to itself.

* A domain app (shop, warehouse, transport, support, payments) imports no other one: what it
  needs travels in messages (their payloads are defined once, in contracts/).
* Product code never imports the demo (simulation/), and config/ and accounts/ (the ground
  floor) no app.
* messaging/ is the ground floor of the apps: it imports none of them, nor observability (the
  read model reads messaging, never the reverse); what it counts lives with it.
* No module edits the environment or patches a library when it is imported: that happens once,
  as a process starts (settings, an AppConfig's ready).
* Every row lock of an app is taken in its locks.py.
* Handlers and emits name only contracts: no code outside messaging/ validates a payload by hand
  (``payload_validated``) or names a message type beside its contract (``type=`` to an emit or
  a timer, a type string to ``@message_handler``).
* The tests stop, kill and pause only servers they started themselves (tests/fault/servers.py):
  never the machine's RabbitMQ through its own ``rabbitmqctl``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ("shop", "warehouse", "transport", "support", "payments")
# course/ (the course's API, make tutorial) is a front on the domain apps, as the API is
PRODUCT = (*DOMAIN, "messaging", "config", "accounts", "contracts", "course")
APPS = (*DOMAIN, "messaging", "observability", "simulation", "course")


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("app", DOMAIN)
def test_a_domain_app_imports_no_other_domain_app(app):
    others = set(DOMAIN) - {app}
    found = {str(path.relative_to(ROOT)): sorted(imported(path) & others) for path in modules(app)}
    assert {path: names for path, names in found.items() if names} == {}


@pytest.mark.parametrize("package", PRODUCT)
def test_product_code_never_imports_the_demo(package):
    assert [str(p.relative_to(ROOT)) for p in modules(package) if "simulation" in imported(p)] == []


@pytest.mark.parametrize("package", ["config", "accounts"])
def test_the_ground_floor_imports_no_app(package):
    """config/, and accounts/ (the sign-in and the API tokens that the shop and transport share)."""
    found = {str(p.relative_to(ROOT)): sorted(imported(p) & set(APPS)) for p in modules(package)}
    assert {path: names for path, names in found.items() if names} == {}


def test_messaging_imports_no_app_and_not_the_read_model():
    found = {str(p.relative_to(ROOT)): sorted(imported(p) & set(APPS) - {"messaging"}) for p in modules("messaging")}
    assert {path: names for path, names in found.items() if names} == {}


def edits_at_import(path: Path) -> list[str]:
    """Statements at a module's top level that assign to ``os.environ[...]`` or to an attribute
    of another module (``values.ValueClass = ...``)."""
    found = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Subscript | ast.Attribute):
                found.append(ast.unparse(target))
    return found


@pytest.mark.parametrize("package", [*APPS, "config", "contracts"])
def test_no_module_edits_the_environment_or_a_library_when_imported(package):
    found = {str(p.relative_to(ROOT)): edits_at_import(p) for p in modules(package)}
    assert {path: edits for path, edits in found.items() if edits} == {}


def test_contracts_import_nothing_of_the_project():
    found = {str(p.relative_to(ROOT)): sorted(imported(p) & {*APPS, "config"}) for p in modules("contracts")}
    assert {path: names for path, names in found.items() if names} == {}


@pytest.mark.parametrize("app", [*DOMAIN, "messaging"])
def test_every_row_lock_of_an_app_is_in_its_locks_module(app):
    # the relay's lease (messaging/lease.py) is the one lock that is no app's row lock
    allowed = {"locks.py", "lease.py"} if app == "messaging" else {"locks.py"}
    assert {p.name for p in modules(app) if "select_for_update" in p.read_text()} <= allowed


EMITS = {"outbox_publish", "outbox_emit", "outbox_write", "timer_set", "timer_cancel"}
HANDLER_REGISTRATIONS = {"message_handler", "message_batch_handler"}


def called_name(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")


def contract_repeated_by_hand(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name, where = called_name(node), f"{path.relative_to(ROOT)}:{node.lineno}"
        if name == "payload_validated":
            found.append(f"{where} validates a payload by hand")
        elif name in EMITS and any(keyword.arg in ("type", "payload") for keyword in node.keywords):
            found.append(f"{where} passes type=/payload= to {name}")
        elif name in HANDLER_REGISTRATIONS and len(node.args) >= 2 and (
                isinstance(node.args[1], ast.Constant)
                or (isinstance(node.args[1], ast.Attribute) and node.args[1].attr in ("TYPE", "TYPES"))):
            found.append(f"{where} registers {name} for a type, not a contract")
    return found


@pytest.mark.parametrize("package", sorted({*APPS, "bench", "tests"} - {"messaging"}))
def test_handlers_and_emits_name_only_contracts(package):
    assert [problem for path in modules(package) for problem in contract_repeated_by_hand(path)] == []


def test_no_second_orm():
    assert not (ROOT / "config" / "rows.py").exists()
    uses = [str(p.relative_to(ROOT)) for package in (*APPS, "config") for p in modules(package)
            if "config.rows" in p.read_text() or "config.transactions" in p.read_text()]
    assert uses == []


def test_no_test_stops_or_restarts_the_machines_broker():
    """``rabbitmqctl`` without ``-n`` talks to the machine's own node: only read-only commands and
    the test vhost's set-up go to it (stop_app, stop, reset, close_all_connections... never)."""
    allowed = {"list_vhosts", "add_vhost", "set_permissions", "list_queues"}
    found = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List | ast.Tuple | ast.Call):
                items = node.args if isinstance(node, ast.Call) else node.elts
                words = [item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)]
                if words and words[0] in {"rabbitmqctl", "rabbitmq-server"} and "-n" not in words:
                    commands = [w for w in words[1:] if not w.startswith("-")]
                    if commands and commands[0] not in allowed:
                        found.setdefault(str(path.relative_to(ROOT)), []).append(" ".join(words))
    assert found == {}
