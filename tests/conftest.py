import pytest

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
