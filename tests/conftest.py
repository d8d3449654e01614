import pytest
from django.tasks import default_task_backend

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
