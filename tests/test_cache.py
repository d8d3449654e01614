"""bananaweb/cache.py: Django's database cache with a one-statement set_many."""

from django.core.cache import cache, caches
from django.test import override_settings

from bananaweb.cache import DatabaseCache


def test_set_many_writes_and_overwrites_in_one_statement(db, django_assert_num_queries):
    assert isinstance(caches["default"], DatabaseCache)
    cache.set("a", "old")
    with django_assert_num_queries(1):
        assert cache.set_many({"a": "new", "b": 2}) == []
    assert cache.get_many(["a", "b"]) == {"a": "new", "b": 2}


def test_set_many_culls_a_full_table(db):
    small = {
        "default": {
            "BACKEND": "bananaweb.cache.DatabaseCache",
            "LOCATION": "bananaweb_cache",
            "OPTIONS": {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2},
        }
    }
    with override_settings(CACHES=small):
        full = caches.create_connection("default")
        full.set_many({f"k{n}": n for n in range(10)})
        full.set_many({f"m{n}": n for n in range(5)})
        kept = full.get_many([f"k{n}" for n in range(10)] + [f"m{n}" for n in range(5)])
    assert len(kept) < 15  # some were culled
    # Django's cull: the first keys in their order ("k…"), expired or not.
    assert all(f"m{n}" in kept for n in range(5))
