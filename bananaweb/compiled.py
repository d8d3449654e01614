"""Per-user queries whose SQL is built once per process: on PostgreSQL, a query
that a page runs every time (its history's rows, the forms' template menu, the
quota) is built and compiled by the ORM for stand-ins, and run with the viewer's
id (and today's start) in their places. Building and compiling such a query costs
a few milliseconds of Python; running it through the cursor, a fraction of one.

Only for a query whose parameters are constants and the stand-ins (the user's
id, today's start, one row's id, the search words): nothing else that varies; and that reads nothing of the user but
their id (the stand-in is a plain user: not staff, no groups). The stand-ins are
values no row can hold (negative ids, a day in 1901, words no one types), so that a constant is never
taken for one. The values come back as the ORM gives them (its converters run:
a JSON field is decoded, for example).
"""

from collections.abc import Callable
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Model, QuerySet

STAND_IN_PK = -918_273_645
STAND_IN_ID = -918_273_646  # the id of the one row a query is about
STAND_IN_TEXT = "\x1fstand-in search words\x1f"  # control characters: never typed
STAND_IN_DAY = datetime(1901, 2, 3, tzinfo=UTC)
_sql: dict = {}


def compiled_rows(
    key: tuple,
    rows_for: Callable[..., QuerySet],
    *,
    model: type[Model],
    user,
    day_start: datetime | None = None,
    pk: int | None = None,
    text: str | None = None,
) -> list[tuple] | None:
    """The rows of `rows_for(user)` (or `rows_for(user, day_start)`,
    `rows_for(user, pk)`, `rows_for(user, text)`: what is given, in that order), a
    QuerySet of `model` returning tuples in its SELECT's order, on PostgreSQL from
    the SQL compiled for `key`; None elsewhere (then use the QuerySet itself)."""
    db = router.db_for_read(model)
    connection = connections[db]
    if connection.vendor != "postgresql" or not user.is_authenticated:
        return None
    key = (db, *key)
    if key not in _sql:
        stand_ins = [get_user_model()(pk=STAND_IN_PK)]
        if day_start is not None:
            stand_ins.append(STAND_IN_DAY)
        if pk is not None:
            stand_ins.append(STAND_IN_ID)
        if text is not None:
            stand_ins.append(STAND_IN_TEXT)
        compiler = rows_for(*stand_ins).query.get_compiler(db)
        sql, params = compiler.as_sql()
        # As QuerySet iteration does: each column's converters, by position.
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        converters = list(compiler.get_converters(columns).items())
        if len(_sql) >= 256:
            _sql.clear()  # deep gallery pages: a key each
        _sql[key] = (sql, params, converters)
    sql, params, converters = _sql[key]
    real = {
        STAND_IN_PK: user.pk,
        STAND_IN_DAY: day_start,
        STAND_IN_ID: pk,
        STAND_IN_TEXT: text,
    }
    values = [real.get(param, param) if _hashable(param) else param for param in params]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        rows = cursor.fetchall()
    if not converters:
        return rows
    return [_converted(row, converters, connection) for row in rows]


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
