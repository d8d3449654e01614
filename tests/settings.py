"""Test settings: the real ones, with tasks recorded instead of run, fast hashing and plain static files."""

import os
import tempfile

# Development keys for the tests and every process they start (the browser
# stack, workers, the simulator); tests of the production settings start their
# own processes without it.
os.environ.setdefault("BANANAWEB_DEV", "1")

from bananaweb.settings import *

TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = tempfile.mkdtemp(prefix="bananaweb-test-media-")
STATIC_ROOT = tempfile.mkdtemp(prefix="bananaweb-test-static-")
MOUNTSEA_BASE_URL = "https://upstream.test"
MOUNTSEA_API_TOKEN = "test-upstream-token"
MOUNTSEA_SIMULATED = False
BANANAWEB_PUBLIC_URL = "http://testserver"
BANANAWEB_POLL_FIRST_DELAY = 0
# Sign-in throttling off, as django-axes advises for tests: with it on, client.login()
# fails (it authenticates without a request). tests/test_signin.py turns it on.
AXES_ENABLED = False
