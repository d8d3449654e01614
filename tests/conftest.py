import io
import logging

import pytest
from django.tasks import default_task_backend

from bananaweb import logs
from tests.factories import UpstreamTokenFactory, UserFactory


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def client_logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def upstream_token(db):
    return UpstreamTokenFactory(name="main", secret_value="test-upstream-token")


@pytest.fixture
def formatted_logs() -> io.StringIO:
    """Every log line as production writes it (bananaweb/logs.py's formatter), in
    both BANANAWEB_LOG_FORMATs (json and console) at once: what the secrecy tests
    read besides caplog."""
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream) for _ in logs.LOG_FORMATS]
    root = logging.getLogger()
    for handler, log_format in zip(handlers, logs.LOG_FORMATS, strict=True):
        handler.setFormatter(logs.formatter(log_format))
        root.addHandler(handler)
    yield stream
    for handler in handlers:
        root.removeHandler(handler)


@pytest.fixture
def clear_tasks():
    """The task backend (a DummyBackend, tests/settings.py), empty before and after."""
    default_task_backend.clear()
    yield default_task_backend
    default_task_backend.clear()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests last: Playwright's sync API leaves an event loop in the
    main thread, and Django then refuses database calls as made from async code."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
