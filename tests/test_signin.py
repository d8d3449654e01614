"""Signing in: throttled by user and by address (django-axes), strong passwords only,
and no password-reset or password-change pages."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"
SITE_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
LOCKED_OUT = "Too many failed sign-ins"


@pytest.fixture(autouse=True)
def axes_on(settings):
    """Throttling on, as in production (tests/settings.py turns it off elsewhere)."""
    settings.AXES_ENABLED = True


def sign_in(client, url: str, username: str, password: str, address="127.0.0.1"):
    return client.post(
        url, {"username": username, "password": password}, REMOTE_ADDR=address
    )


def is_signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail_times(client, url: str, username: str, times: int, address="127.0.0.1"):
    for _ in range(times):
        sign_in(client, url, username, "wrong password", address)


# --- throttling --------------------------------------------------------------------------


@pytest.mark.parametrize("url", [SITE_LOGIN, ADMIN_LOGIN])
def test_thirty_wrong_passwords_then_the_right_one_is_refused(client, db, url):
    UserFactory(username="member", is_staff=True)
    fail_times(client, url, "member", 30)

    response = sign_in(client, url, "member", PASSWORD)

    assert not is_signed_in(client)
    assert response.status_code == 429
    html = response.content.decode()
    assert LOCKED_OUT in html
    assert "15 minutes" in html and "admin can unlock" in html


def test_the_user_stays_locked_from_another_address(client, db):
    UserFactory(username="member")
    fail_times(client, SITE_LOGIN, "member", 30, address="10.0.0.1")

    sign_in(client, SITE_LOGIN, "member", PASSWORD, address="10.0.0.2")

    assert not is_signed_in(client)


def test_one_address_trying_many_user_names_is_locked_out(client, db):
    UserFactory(username="member")
    for n in range(30):
        sign_in(client, SITE_LOGIN, f"someone{n}", "wrong password", "10.0.0.1")

    locked = sign_in(client, SITE_LOGIN, "member", PASSWORD, address="10.0.0.1")
    assert not is_signed_in(client)
    assert locked.status_code == 429

    # The user's own name was never tried: from elsewhere they sign in.
    sign_in(client, SITE_LOGIN, "member", PASSWORD, address="10.0.0.2")
    assert is_signed_in(client)


def test_a_made_up_forwarded_for_header_does_not_dodge_the_address_limit(client, db):
    UserFactory(username="member")
    for n in range(30):
        client.post(
            SITE_LOGIN,
            {"username": f"someone{n}", "password": "wrong password"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        )

    client.post(
        SITE_LOGIN,
        {"username": "member", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.200",
    )
    assert not is_signed_in(client)


def test_a_few_typos_do_not_lock_anyone_out(client, db):
    UserFactory(username="member")
    fail_times(client, SITE_LOGIN, "member", 3)

    response = sign_in(client, SITE_LOGIN, "member", PASSWORD)

    assert response.status_code == 302
    assert is_signed_in(client)


def test_the_unlock_command_lets_the_user_in_again(client, db):
    UserFactory(username="member")
    fail_times(client, SITE_LOGIN, "member", 30)

    call_command("axes_reset_username", "member")

    sign_in(client, SITE_LOGIN, "member", PASSWORD)
    assert is_signed_in(client)


def test_an_admin_unlocks_a_user_in_the_admin(client, admin_client, db):
    UserFactory(username="member")
    fail_times(client, SITE_LOGIN, "member", 30)
    changelist = reverse("admin:axes_accessattempt_changelist")
    listed = admin_client.get(changelist)
    assert listed.status_code == 200 and "member" in listed.content.decode()
    attempts = list(AccessAttempt.objects.values_list("pk", flat=True))
    admin_client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )

    sign_in(client, SITE_LOGIN, "member", PASSWORD)
    assert is_signed_in(client)


# --- passwords ---------------------------------------------------------------------------


def error_codes(password: str, username: str = "member") -> set[str]:
    user = get_user_model()(username=username)
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        return {error.code for error in exc.error_list}
    return set()


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("member2024", "password_too_similar"),
        ("83920174", "password_entirely_numeric"),
        ("839201748392", "password_entirely_numeric"),
        ("banana-2024", "password_too_short"),
        ("bananas", "password_too_short"),
    ],
)
def test_weak_passwords_are_refused(password, code):
    assert code in error_codes(password)


@pytest.mark.parametrize("password", ["Member!2024-bananas", "my-MEMBER-password-9"])
def test_a_password_holding_the_user_name_is_refused_however_long(password):
    assert "password_contains_username" in error_codes(password)


def test_a_long_unrelated_passphrase_is_accepted():
    assert error_codes(PASSWORD) == set()


# --- only the sign-in views --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/reset/done/",
        "/accounts/password_change/",
        "/accounts/password_change/done/",
    ],
)
def test_password_reset_and_change_pages_do_not_exist(client, db, url):
    assert client.get(url).status_code == 404
    assert client.post(url, {"email": "member@example.com"}).status_code == 404


def test_sign_in_and_sign_out_keep_their_urls(client, db):
    assert reverse("login") == SITE_LOGIN
    assert reverse("logout") == "/accounts/logout/"
    UserFactory(username="member")
    sign_in(client, SITE_LOGIN, "member", PASSWORD)
    assert is_signed_in(client)
    assert client.post(reverse("logout")).status_code == 302
    assert not is_signed_in(client)
