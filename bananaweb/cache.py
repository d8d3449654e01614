"""Django's database cache, with a `set_many` of one statement instead of three
for each key: a page's missing cards (bananaweb.fragments) are written in one
upsert, which also counts the entries to decide whether to cull; and a counter,
`count_hit`, of one statement on PostgreSQL (the gateway's rate limit)."""

import base64
import pickle
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import DatabaseError, connections, router
from django.utils.timezone import now as tz_now


class DatabaseCache(DjangoDatabaseCache):
    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None) -> list:
        if not data:
            return []
        timeout = self.get_backend_timeout(timeout)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote_name = connection.ops.quote_name
        table = quote_name(self._table)
        if timeout is None:
            expires = datetime.max
        else:
            expires = datetime.fromtimestamp(
                timeout, tz=UTC if settings.USE_TZ else None
            )
        expires = connection.ops.adapt_datetimefield_value(
            expires.replace(microsecond=0)
        )
        rows = [
            (
                self.make_and_validate_key(key, version=version),
                base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode(
                    "latin1"
                ),
                expires,
            )
            for key, value in data.items()
        ]
        key, value, expires_column = (
            quote_name(name) for name in ("cache_key", "value", "expires")
        )
        # PostgreSQL and SQLite both take this upsert (the key is the primary
        # key); the count rides along, of the table as it was before.
        sql = (
            f"INSERT INTO {table} ({key}, {value}, {expires_column}) VALUES "
            + ", ".join(["(%s, %s, %s)"] * len(rows))
            + f" ON CONFLICT ({key}) DO UPDATE SET {value} = excluded.{value}, "
            f"{expires_column} = excluded.{expires_column}"
            f" RETURNING (SELECT COUNT(*) FROM {table})"
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, [field for row in rows for field in row])
                # At most this many now (PostgreSQL's count is of the table before
                # the insert; an overwritten key counts twice, which culls early).
                count = cursor.fetchone()[0] + len(rows)
                if count > self._max_entries:
                    self._cull(db, cursor, tz_now().replace(microsecond=0), count)
        except DatabaseError:
            # As Django's own set: a cache write may fail, the page goes on.
            return list(data)
        return []

    def count_hit(self, key: str, timeout: int, version=None) -> int:
        """Add one to the counter at `key` (starting it at 1, to expire in
        `timeout` seconds, if it is missing or expired) and return its value: one
        upsert on PostgreSQL; cache.add then cache.incr elsewhere. The value is
        pickled at protocol 0 ("I<n>\\n."), which SQL can read and write, and
        which `get` reads as any other value."""
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        if connection.vendor != "postgresql":
            self.add(key, 0, timeout=timeout, version=version)
            return self.incr(key, version=version)
        quote_name = connection.ops.quote_name
        table = quote_name(self._table)
        now = datetime.now(tz=UTC if settings.USE_TZ else None).replace(microsecond=0)
        expires = now + timedelta(seconds=timeout)
        adapt = connection.ops.adapt_datetimefield_value
        first = base64.b64encode(pickle.dumps(1, 0)).decode("latin1")
        # A counter's digits, read from its pickle (escape: any bytes are text).
        count = (
            f"substring(encode(decode({table}.value, 'base64'), 'escape') "
            "from '^I([0-9]+)')::bigint"
        )
        sql = (
            f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s) "
            "ON CONFLICT (cache_key) DO UPDATE SET "
            f"value = CASE WHEN {table}.expires > %s THEN encode(convert_to("
            f"'I' || (COALESCE({count}, 0) + 1)::text || chr(10) || '.', 'UTF8'), "
            "'base64') ELSE excluded.value END, "
            f"expires = CASE WHEN {table}.expires > %s THEN {table}.expires "
            "ELSE excluded.expires END "
            "RETURNING value"
        )
        params = [
            self.make_and_validate_key(key, version=version),
            first,
            adapt(expires),
            adapt(now),
            adapt(now),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            value = cursor.fetchone()[0]
        return pickle.loads(base64.b64decode(value.encode()))
