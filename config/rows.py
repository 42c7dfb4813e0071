"""The ORM calls that every message makes, without building their SQL every time.

A queue worker spent most of its CPU in the ORM turning querysets into SQL: locking the
row a message is about, saving a few of its fields, inserting a row. On PostgreSQL these
helpers build that SQL once per model (and field set) and then only run it, which costs
about a third of the ORM call it replaces; the instances they take and return are ordinary
model instances, the rows they write are the rows the ORM would write (defaults,
``auto_now``/``auto_now_add``, field preparation: tests/config/test_rows.py). On any other
database (the demo's SQLite) they are the plain ORM calls.

* ``row_lock(Model, field=value)``  -- ``Model.objects.select_for_update().filter(field=value).first()``
  (``order_by=("created_at", "pk")``: the first in that order)
* ``row_get(Model, field=value)``   -- ``Model.objects.filter(field=value).first()``
* ``row_values(Model, names, field=value)`` -- ``....filter(field=value).values_list(*names).first()``
* ``rows_lock_all(Model)``           -- ``list(Model.objects.select_for_update().order_by("pk"))`` (small tables)
* ``rows_lock_among(Model, "field", values)`` -- the same, ``.filter(field__in=values)``
* ``row_update(instance, fields)``   -- ``instance.save(update_fields=fields)``
* ``row_insert(instance)``           -- ``instance.save(force_insert=True)``

No signals are sent (the project uses none for its domain flow; see STYLE.md).

``statement_cursor()`` is the cursor they run on: one per connection, kept and reused, since
making a cursor for every statement cost almost as much CPU as running it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


@cache
def _fast() -> bool:
    # Asked on every call: read once. (Django's ``connection`` is a proxy that looks the
    # thread's connection up on every attribute access, a tenth of a handler's CPU time
    # when used for every field of every row: the helpers below look it up once per call.)
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


def statement_cursor():
    """This thread's connection's cursor, for statements whose results are read at once.

    Kept on the connection and made anew when the connection was (re)opened, and never kept
    while queries are being logged (DEBUG, tests capturing queries: they need a logging cursor).
    Not a context manager to close: use it, fetch, and leave it.
    """
    db = connections[DEFAULT_DB_ALIAS]
    cached = db.__dict__.get("_statement_cursor")
    if cached is not None and cached.cursor.connection is db.connection and not db.queries_logged:
        return cached
    cursor = db.cursor()
    db.__dict__["_statement_cursor"] = None if db.queries_logged else cursor
    return cursor


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


@cache
def _select_sql(model: type[Model], field_name: str, names: tuple[str, ...] | None,
                lock: bool, order_by: tuple[str, ...] = ("pk",)) -> tuple[str, Field, tuple[str, ...], tuple]:
    meta = model._meta
    field = meta.pk if field_name == "pk" else meta.get_field(field_name)
    fields = meta.concrete_fields if names is None else [meta.get_field(name) for name in names]
    order = ", ".join(_qn((meta.pk if name == "pk" else meta.get_field(name)).column) for name in order_by)
    sql = (
        f"SELECT {', '.join(_qn(f.column) for f in fields)} FROM {_qn(meta.db_table)} "
        f"WHERE {_qn(field.column)} = %s ORDER BY {order} LIMIT 1" + (" FOR UPDATE" if lock else "")
    )
    return sql, field, tuple(f.attname for f in fields), _converters(fields)


def _converters(fields) -> tuple:
    """(index, converters) of the columns the database hands back in another form than the field's (JSON text)."""
    return tuple((i, tuple(f.get_db_converters(connection))) for i, f in enumerate(fields)
                 if f.get_db_converters(connection))


def _converted(row, converters, db) -> list:
    row = list(row)
    for index, funcs in converters:
        for func in funcs:
            row[index] = func(row[index], None, db)
    return row


def _select_one(model: type[Model], field_name: str, value, names: tuple[str, ...] | None,
                lock: bool, order_by: tuple[str, ...] = ("pk",)) -> tuple[tuple[str, ...], list] | None:
    sql, field, attnames, converters = _select_sql(model, field_name, names, lock, order_by)
    db = connections[DEFAULT_DB_ALIAS]
    param = field.get_db_prep_value(value, db)
    cursor = statement_cursor()
    cursor.execute(sql, [param])
    row = cursor.fetchone()
    if row is None:
        return None
    return attnames, _converted(row, converters, db)


def row_lock(model: type[M], *, order_by: tuple[str, ...] = ("pk",), **lookup) -> M | None:
    """The first row (by ``order_by``, field names) whose one field equals the value, locked FOR
    UPDATE; None if none.

    A value the field cannot hold (a malformed UUID, say) raises the ORM's ValidationError.
    """
    ((field_name, value),) = lookup.items()
    if not _fast():
        return model._default_manager.select_for_update().filter(**{field_name: value}).order_by(*order_by).first()
    found = _select_one(model, field_name, value, None, lock=True, order_by=tuple(order_by))
    if found is None:
        return None
    attnames, row = found
    return model.from_db(DEFAULT_DB_ALIAS, list(attnames), row)


def row_get(model: type[M], **lookup) -> M | None:
    """The first row (by primary key) whose one field equals the value; None if none."""
    ((field_name, value),) = lookup.items()
    if not _fast():
        return model._default_manager.filter(**{field_name: value}).order_by("pk").first()
    found = _select_one(model, field_name, value, None, lock=False)
    if found is None:
        return None
    attnames, row = found
    return model.from_db(DEFAULT_DB_ALIAS, list(attnames), row)


def row_values(model: type[Model], names: Sequence[str], **lookup) -> tuple | None:
    """These fields of the first row (by primary key) whose one field equals the value; None if none."""
    ((field_name, value),) = lookup.items()
    if not _fast():
        return model._default_manager.filter(**{field_name: value}).order_by("pk").values_list(*names).first()
    found = _select_one(model, field_name, value, tuple(names), lock=False)
    return None if found is None else tuple(found[1])


@cache
def _all_sql(model: type[Model]) -> tuple[str, list[str], tuple]:
    meta = model._meta
    fields = meta.concrete_fields
    sql = (f"SELECT {', '.join(_qn(f.column) for f in fields)} FROM {_qn(meta.db_table)} "
           f"ORDER BY {_qn(meta.pk.column)} FOR UPDATE")
    return sql, [f.attname for f in fields], _converters(fields)


def rows_lock_all(model: type[M]) -> list[M]:
    """Every row of a small table, locked FOR UPDATE in primary-key order (one order for every caller)."""
    if not _fast():
        return list(model._default_manager.select_for_update().order_by("pk"))
    sql, attnames, converters = _all_sql(model)
    return _instances(model, sql, [], attnames, converters)


@cache
def _among_sql(model: type[Model], field_name: str) -> tuple[str, Field, list[str], tuple]:
    meta = model._meta
    field = meta.get_field(field_name)
    fields = meta.concrete_fields
    sql = (f"SELECT {', '.join(_qn(f.column) for f in fields)} FROM {_qn(meta.db_table)} "
           f"WHERE {_qn(field.column)} = ANY(%s) ORDER BY {_qn(meta.pk.column)} FOR UPDATE")
    return sql, field, [f.attname for f in fields], _converters(fields)


def rows_lock_among(model: type[M], field_name: str, values: Sequence) -> list[M]:
    """The rows whose field is one of ``values``, locked FOR UPDATE in primary-key order."""
    if not _fast():
        return list(model._default_manager.select_for_update().filter(**{f"{field_name}__in": values})
                    .order_by("pk"))
    sql, field, attnames, converters = _among_sql(model, field_name)
    db = connections[DEFAULT_DB_ALIAS]
    return _instances(model, sql, [[field.get_db_prep_value(value, db) for value in dict.fromkeys(values)]],
                      attnames, converters)


def _instances(model: type[M], sql: str, params: list, attnames: list[str], converters: tuple) -> list[M]:
    """Run a precompiled SELECT of ``model``'s columns; its rows as instances, as the ORM loads them."""
    db = connections[DEFAULT_DB_ALIAS]
    cursor = statement_cursor()
    cursor.execute(sql, params)
    return [model.from_db(DEFAULT_DB_ALIAS, attnames, _converted(row, converters, db)) for row in cursor.fetchall()]


@cache
def _update_sql(model: type[Model], field_names: tuple[str, ...]) -> tuple[str, tuple[Field, ...]]:
    meta = model._meta
    fields = tuple(meta.get_field(name) for name in field_names)
    sql = (
        f"UPDATE {_qn(meta.db_table)} SET {', '.join(f'{_qn(f.column)} = %s' for f in fields)} "
        f"WHERE {_qn(meta.pk.column)} = %s"
    )
    return sql, fields


def row_update(instance: Model, fields: Sequence[str]) -> None:
    """Write these fields of a saved instance (``auto_now`` ones get the time now)."""
    if not _fast():
        instance.save(update_fields=fields)
        return
    sql, model_fields = _update_sql(type(instance), tuple(dict.fromkeys(fields)))
    db = connections[DEFAULT_DB_ALIAS]
    params = [f.get_db_prep_save(f.pre_save(instance, False), db) for f in model_fields]
    params.append(instance._meta.pk.get_db_prep_value(instance.pk, db))
    cursor = statement_cursor()
    cursor.execute(sql, params)
    if cursor.rowcount != 1:
        raise DatabaseError(f"{type(instance).__name__} {instance.pk} was not updated (no such row)")


@cache
def _insert_sql(model: type[Model], ignore_conflicts: bool) -> tuple[str, tuple[Field, ...], bool]:
    meta = model._meta
    generated_pk = meta.pk.db_returning  # an AutoField: the database numbers the row
    fields = tuple(f for f in meta.concrete_fields if not (f.primary_key and generated_pk))
    sql = (
        f"INSERT INTO {_qn(meta.db_table)} ({', '.join(_qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
        + (f" RETURNING {_qn(meta.pk.column)}" if generated_pk else "")
    )
    return sql, fields, generated_pk


def row_insert(instance: M, *, ignore_conflicts: bool = False) -> M:
    """Insert a new instance (its defaults already set by the model). With ``ignore_conflicts``
    a row that would break a unique constraint is skipped, and a generated pk stays None (on
    other databases than PostgreSQL it stays None either way: ``bulk_create`` does not say)."""
    if not _fast():
        if ignore_conflicts:
            type(instance)._default_manager.bulk_create([instance], ignore_conflicts=True)
        else:
            instance.save(force_insert=True)
        return instance
    sql, fields, generated_pk = _insert_sql(type(instance), ignore_conflicts)
    db = connections[DEFAULT_DB_ALIAS]
    params = [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]
    cursor = statement_cursor()
    cursor.execute(sql, params)
    if generated_pk:
        row = cursor.fetchone()
        instance.pk = row[0] if row else None
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS
    return instance
