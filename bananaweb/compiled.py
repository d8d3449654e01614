"""Per-user queries whose SQL is built once per process: on PostgreSQL, a query
that a page runs every time (its history's rows, the forms' template menu, the
quota) is built and compiled by the ORM for stand-ins, and run with the viewer's
id (and today's start) in their places. Building and compiling such a query costs
a few milliseconds of Python; running it through the cursor, a fraction of one.

Only for a query whose parameters are constants and the stand-ins: no date, no
search words, nothing else that varies; and that reads nothing of the user but
their id (the stand-in is a plain user: not staff, no groups). The stand-ins are values no row can hold
(a negative id, a day in 1901), so that a constant is never taken for one.
"""

from collections.abc import Callable
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Model, QuerySet

STAND_IN_PK = -918_273_645
STAND_IN_DAY = datetime(1901, 2, 3, tzinfo=UTC)
_sql: dict = {}


def compiled_rows(
    key: tuple,
    rows_for: Callable[..., QuerySet],
    *,
    model: type[Model],
    user,
    day_start: datetime | None = None,
) -> list[tuple] | None:
    """The rows of `rows_for(user)` (or `rows_for(user, day_start)`), a QuerySet of
    `model` returning tuples in its SELECT's order, on PostgreSQL from the SQL
    compiled for `key`; None elsewhere (then use the QuerySet itself)."""
    db = router.db_for_read(model)
    connection = connections[db]
    if connection.vendor != "postgresql" or not user.is_authenticated:
        return None
    key = (db, *key)
    if key not in _sql:
        stand_ins = [get_user_model()(pk=STAND_IN_PK)]
        if day_start is not None:
            stand_ins.append(STAND_IN_DAY)
        sql, params = rows_for(*stand_ins).query.get_compiler(db).as_sql()
        if len(_sql) >= 256:
            _sql.clear()  # deep gallery pages: a key each
        _sql[key] = (sql, params)
    sql, params = _sql[key]
    real = {STAND_IN_PK: user.pk, STAND_IN_DAY: day_start}
    values = [real.get(param, param) if _hashable(param) else param for param in params]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchall()


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
