"""Queries whose SQL is built once per process: on PostgreSQL, a query that a
page or an API call runs every time (its history's rows, the forms' template
menu, the quota, a token's check) is built and compiled by the ORM for
stand-ins, and run with the real values in their places. Building and compiling
such a query costs a few milliseconds of Python; running it through the cursor,
a fraction of one.

Only for a query whose parameters are constants and the values given: nothing
else that varies. A user (any model instance) stands in as a bare instance of
its model with a stand-in id: the query may read nothing of it but its id (no
staff flag, no groups). Each stand-in is a value no row holds and no one types
(negative ids, a day in 1901, words between control characters), so that a
constant is never taken for one. The values come back as the ORM gives them
(its converters run: a JSON field is decoded, for example).
"""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connections, router
from django.db.models import Model, QuerySet

from bananaweb.remembered import Remembered

STAND_IN_ID = -918_273_645
STAND_IN_DAY = datetime(1901, 2, 3, tzinfo=UTC)
STAND_IN_UUID = 0x5EED_0000_0000_4000_8000_0000_0000_0000
# Each query's SQL for each key (deep history pages have one each): the last ones.
_sql = Remembered(256)


@dataclass(frozen=True)
class Query:
    """A query to run from compiled SQL: `rows_for(*values)`, a QuerySet of
    `model` returning tuples, its SQL compiled for `key` (which with the values'
    names must tell the SQL apart). Made by `query`."""

    key: tuple
    rows_for: Callable[..., QuerySet]
    model: type[Model]
    values: dict


def query(key: tuple, rows_for, *, model: type[Model], **values) -> Query:
    """The Query of these values, a value given as None left out."""
    given = {name: value for name, value in values.items() if value is not None}
    return Query(key, rows_for, model, given)


@dataclass(frozen=True)
class _Bound:
    connection: object
    sql: str
    params: list
    converters: list
    memo_key: tuple


def compiled_rows(
    key: tuple,
    rows_for: Callable[..., QuerySet],
    *,
    model: type[Model],
    **values: object,
) -> list[tuple] | None:
    """The rows of `query(key, rows_for, model=model, **values)` (see rows)."""
    return rows(query(key, rows_for, model=model, **values))


def rows(asked: Query) -> list[tuple] | None:
    """The query's rows, in its SELECT's order, as the ORM gives them, on
    PostgreSQL from its compiled SQL (taken from `together` when it ran them
    already); None elsewhere, or for a value it can't stand in for (then use the
    QuerySet itself)."""
    bound = _bind(asked)
    if bound is None:
        return None
    memo = _ran_together.get()
    if memo is not None and bound.memo_key in memo:
        raw = memo.pop(bound.memo_key)
    else:
        with bound.connection.cursor() as cursor:
            cursor.execute(bound.sql, bound.params)
            raw = cursor.fetchall()
    return _converted_rows(raw, bound)


@contextmanager
def together(*queries: Query | None) -> Iterator[None]:
    """Run these queries now, in one round trip to PostgreSQL (statements one
    after the other, read with nextset), for the code inside to take their rows
    (`rows`) without a query each: a page's queries, whose SQL is known before
    the page is built (and what a page is keyed by: bananaweb.pages). Elsewhere,
    nothing happens first.
    What the code inside does not take is dropped on the way out."""
    bound = [b for asked in queries if asked is not None and (b := _bind(asked))]
    connection = bound[0].connection if bound else None
    if not bound or any(b.connection is not connection for b in bound):
        yield
        return
    memo = {}
    with connection.cursor() as cursor:
        cursor.execute(
            ";\n".join(b.sql for b in bound), [p for b in bound for p in b.params]
        )
        for index, each in enumerate(bound):
            if index:
                cursor.nextset()
            memo[each.memo_key] = cursor.fetchall()
    token = _ran_together.set(memo)
    try:
        yield
    finally:
        _ran_together.reset(token)


# The rows `together` read for the code inside it, by query and values.
_ran_together: ContextVar[dict | None] = ContextVar("ran_together", default=None)


def ran_together() -> tuple | None:
    """What the innermost `together` read and the code inside has not taken yet:
    ((query and values, rows), ...) in the order it ran them; None outside one,
    or where it ran nothing (SQLite)."""
    memo = _ran_together.get()
    return None if memo is None else tuple(memo.items())


def _bind(asked: Query) -> _Bound | None:
    """The query's compiled SQL with its values in the stand-ins' places."""
    db = router.db_for_read(asked.model)
    connection = connections[db]
    given = asked.values
    if connection.vendor != "postgresql" or not all(
        isinstance(value, (Model, int, str, datetime, uuid.UUID))
        for value in given.values()
    ):
        return None
    key = (db, *asked.key, *given)
    if (compiled := _sql.get(key)) is None:
        stand_ins = [
            _stand_in(value, index) for index, value in enumerate(given.values())
        ]
        compiler = asked.rows_for(*stand_ins).query.get_compiler(db)
        sql, params = compiler.as_sql()
        # As QuerySet iteration does: each column's converters, by position.
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        converters = list(compiler.get_converters(columns).items())
        # What each stand-in is as a parameter, to find it among the params.
        standing = [_value(stand_in) for stand_in in stand_ins]
        compiled = (sql, params, converters, standing)
        _sql.put(key, compiled)
    sql, params, converters, standing = compiled
    real = dict(zip(standing, map(_value, given.values()), strict=True))
    bound = [real.get(param, param) if _hashable(param) else param for param in params]
    memo_key = (key, *(_value(value) for value in given.values()))
    return _Bound(connection, sql, bound, converters, memo_key)


def _converted_rows(raw: list[tuple], bound: _Bound) -> list[tuple]:
    if not bound.converters:
        return raw
    return [_converted(row, bound.converters, bound.connection) for row in raw]


def _stand_in(value: object, index: int) -> object:
    """The stand-in of the index-th value, of its type; distinct for each index."""
    match value:
        case Model():
            # __class__, not type(): request.user is a lazy object around a User.
            return value.__class__(pk=STAND_IN_ID - index)
        case bool():
            raise TypeError("a flag is a constant: put it in the key")
        case int():
            return STAND_IN_ID - index
        case str():
            return f"\x1fstand-in {index}\x1f"
        case datetime():
            return STAND_IN_DAY + timedelta(days=index)
        case uuid.UUID():
            return uuid.UUID(int=STAND_IN_UUID + index)
    raise TypeError(f"no stand-in for {type(value).__name__}")


def _value(value: object) -> object:
    """What a value is as a query's parameter: a model instance, its id."""
    return value.pk if isinstance(value, Model) else value


def _converted(row: tuple, converters: list, connection) -> tuple:
    values = list(row)
    for position, (functions, expression) in converters:
        value = values[position]
        for function in functions:
            value = function(value, expression, connection)
        values[position] = value
    return tuple(values)


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
