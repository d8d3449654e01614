"""bananaweb's production settings for `make bench`, plus the floor's URL
(tests/benchmarks/urls.py): nothing of the product changes."""

from bananaweb.settings import *

ROOT_URLCONF = "tests.benchmarks.urls"
