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

A query made with `prepare=True` is also planned once per connection: a
PREPAREd statement, its values as parameters of declared types, its constants
written in (so that a partial index whose condition is one, such as the team's
history, serves its generic plan), run by EXECUTE. Only for a query whose best
plan is the same whatever the values (rows by their index): PostgreSQL then
reuses one generic plan, which for the main page's rows halved what the query
costs it (planning was half). A query whose best plan depends on the values (a
search's words) is planned each time.
"""

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connections, router
from django.db.models import Model, QuerySet
from psycopg.sql import Literal

from bananaweb.remembered import Remembered

STAND_IN_ID = -918_273_645
STAND_IN_DAY = datetime(1901, 2, 3, tzinfo=UTC)
STAND_IN_UUID = 0x5EED_0000_0000_4000_8000_0000_0000_0000
# Each query's SQL for each key (deep history pages have one each): the last ones.
_sql = Remembered(256)
# Statements a connection keeps prepared at most; past it, it forgets them all.
PREPARED_PER_CONNECTION = 64
# A value's declared type in a PREPARE, by its type as a parameter (see _stand_in).
_VALUE_TYPES = (
    (int, "bigint"),
    (str, "text"),
    (datetime, "timestamptz"),
    (uuid.UUID, "uuid"),
)


@dataclass(frozen=True)
class Query:
    """A query to run from compiled SQL: `rows_for(*values)`, a QuerySet of
    `model` returning tuples, its SQL compiled for `key` (which with the values'
    names must tell the SQL apart). Made by `query`."""

    key: tuple
    rows_for: Callable[..., QuerySet]
    model: type[Model]
    values: dict
    prepare: bool = False


def query(
    key: tuple, rows_for, *, model: type[Model], prepare: bool = False, **values
) -> Query:
    """The Query of these values, a value given as None left out; `prepare`:
    planned once per connection (see above)."""
    given = {name: value for name, value in values.items() if value is not None}
    return Query(key, rows_for, model, given, prepare)


@dataclass(frozen=True)
class _Bound:
    connection: object
    sql: str
    params: list
    converters: list
    memo_key: tuple
    prepared: "_Statement | None"


def compiled_rows(
    key: tuple,
    rows_for: Callable[..., QuerySet],
    *,
    model: type[Model],
    prepare: bool = False,
    **values: object,
) -> list[tuple] | None:
    """The rows of `query(key, rows_for, model=model, prepare=prepare, **values)`
    (see rows)."""
    return rows(query(key, rows_for, model=model, prepare=prepare, **values))


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
            (raw,) = _run(cursor, [bound])
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
    with connection.cursor() as cursor:
        memo = {
            each.memo_key: rows
            for each, rows in zip(bound, _run(cursor, bound), strict=True)
        }
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


def _run(cursor, bound: list[_Bound]) -> list[list[tuple]]:
    """Each query's raw rows, all in one round trip: the statements not yet
    prepared on this connection are prepared first, in the same text."""
    prepared = _prepared_on(cursor.db)
    wanted = {b.prepared.name: b.prepared for b in bound if b.prepared}
    first = []
    kept = len(prepared.names | wanted.keys())
    if prepared.unsure or kept > PREPARED_PER_CONNECTION:
        first.append("DEALLOCATE ALL")
        prepared.names.clear()
        prepared.unsure = False
    first += [
        statement.text(prepared.raw_connection)
        for name, statement in wanted.items()
        if name not in prepared.names
    ]
    statements, params = [], []
    for each in bound:
        if each.prepared:
            values = [each.params[index] for index in each.prepared.variable]
            statements.append(each.prepared.execute)
            params += values
        else:
            statements.append(each.sql)
            params += each.params
    try:
        cursor.execute(";\n".join([*first, *statements]), params)
        for _ in first:  # their results: nothing to read
            cursor.nextset()
        results = []
        for index in range(len(bound)):
            if index:
                cursor.nextset()
            results.append(cursor.fetchall())
    except Exception:
        # A PREPARE outlives a failed text: which ones ran is not known.
        prepared.unsure = True
        raise
    prepared.names |= wanted.keys()
    return results


@dataclass
class _Prepared:
    """The statements prepared on one database connection (a session's own)."""

    raw_connection: object
    names: set = field(default_factory=set)
    unsure: bool = False  # after an error: start again from none


def _prepared_on(connection) -> _Prepared:
    """What `connection` (Django's, its cursor open: health-checked) has prepared;
    a new connection to the database has nothing prepared."""
    raw = connection.connection
    prepared = getattr(connection, "_bananaweb_prepared", None)
    if prepared is None or prepared.raw_connection is not raw:
        prepared = connection._bananaweb_prepared = _Prepared(raw)
    return prepared


@dataclass
class _Statement:
    """A compiled query as a prepared statement: its values (the stand-ins'
    places) as parameters, its constants written in, so that a generic plan
    knows them (a partial index whose condition is one serves it)."""

    name: str
    sql: str
    params: list  # as compiled: stand-ins and constants
    variable: tuple[int, ...]  # the positions of the values among them
    types: tuple[str, ...]  # the values' declared types
    _text: str = ""

    @property
    def execute(self) -> str:
        if not self.variable:
            return f"EXECUTE {self.name}"
        return f"EXECUTE {self.name}({', '.join(['%s'] * len(self.variable))})"

    def text(self, raw_connection) -> str:
        """Its PREPARE, with %% for each % (the text goes through the cursor's
        formatting, with the EXECUTEs' parameters)."""
        if not self._text:
            positions = iter(range(len(self.params)))

            def placed(match: re.Match) -> str:
                if match[0] == "%%":
                    return "%%"
                index = next(positions)
                if index in self.variable:
                    return f"${self.variable.index(index) + 1}"
                literal = Literal(self.params[index]).as_string(raw_connection)
                return literal.replace("%", "%%")

            declared = f"({', '.join(self.types)})" if self.types else ""
            body = re.sub(r"%%|%s", placed, self.sql)
            self._text = f"PREPARE {self.name}{declared} AS {body}"
        return self._text


def _statement(sql: str, params: list, standing: list) -> _Statement:
    variable = tuple(
        index
        for index, param in enumerate(params)
        if _hashable(param) and param in standing
    )
    types = tuple(
        next(kind for cls, kind in _VALUE_TYPES if isinstance(params[index], cls))
        for index in variable
    )
    # Named by all it is: one SQL may be compiled with other constants.
    constants = [param for index, param in enumerate(params) if index not in variable]
    named = repr((sql, constants, variable, types)).encode()
    name = "bw_" + hashlib.sha256(named).hexdigest()[:24]
    return _Statement(name, sql, params, variable, types)


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
    key = (db, *asked.key, asked.prepare, *given)
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
        prepared = _statement(sql, params, standing) if asked.prepare else None
        compiled = (sql, params, converters, standing, prepared)
        _sql.put(key, compiled)
    sql, params, converters, standing, prepared = compiled
    real = dict(zip(standing, map(_value, given.values()), strict=True))
    bound = [real.get(param, param) if _hashable(param) else param for param in params]
    memo_key = (key, *(_value(value) for value in given.values()))
    return _Bound(connection, sql, bound, converters, memo_key, prepared)


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
