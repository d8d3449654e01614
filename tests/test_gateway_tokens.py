"""Personal API tokens: storage, use, the settings page, the admin and the command."""

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bananaweb.gateway import services
from bananaweb.gateway.models import ApiToken
from tests.gateway_helpers import bearer

RESULT = "/api/gemini/task/result"


def call_api(raw: str):
    return Client().get(RESULT, {"taskId": "x"}, headers=bearer(raw))


# --- Storage and use --------------------------------------------------------------------


def test_a_token_is_random_and_only_its_hash_is_stored(user):
    api_token, raw = services.api_token_create(user=user, name="ci")
    _, other_raw = services.api_token_create(user=user, name="ci")

    assert re.fullmatch(r"bw_[A-Za-z0-9_-]{43}", raw)
    assert raw != other_raw
    assert api_token.prefix == raw[:11]
    assert api_token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM gateway_apitoken")
        stored = repr(cursor.fetchall())
    assert raw not in stored and raw[11:] not in stored


def test_a_revoked_token_stops_working(user):
    api_token, raw = services.api_token_create(user=user, name="ci")
    assert call_api(raw).status_code == 404

    services.api_token_revoke(api_token=api_token)

    assert call_api(raw).status_code == 401
    api_token.refresh_from_db()
    assert api_token.revoked_at is not None


def test_last_used_is_recorded_at_most_once_a_minute(user):
    api_token, raw = services.api_token_create(user=user, name="ci")
    assert api_token.last_used_at is None

    call_api(raw)
    api_token.refresh_from_db()
    first_use = api_token.last_used_at
    assert first_use is not None
    call_api(raw)
    api_token.refresh_from_db()
    assert api_token.last_used_at == first_use

    ApiToken.objects.filter(pk=api_token.pk).update(
        last_used_at=first_use - timedelta(minutes=2)
    )
    call_api(raw)
    api_token.refresh_from_db()
    assert api_token.last_used_at > first_use


def test_a_recent_token_authenticates_without_a_write(user, django_assert_num_queries):
    api_token, raw = services.api_token_create(user=user, name="ci")
    ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=timezone.now())
    with django_assert_num_queries(1):
        assert services.api_token_authenticate(raw=raw) == api_token


# --- The settings page --------------------------------------------------------------------


def test_the_tokens_page_lists_own_tokens_only(client_logged_in, user, other_user):
    services.api_token_create(user=user, name="nightly render")
    services.api_token_create(user=other_user, name="bobs secret script")

    html = client_logged_in.get(reverse("api-tokens")).content.decode()

    assert "nightly render" in html
    assert "bobs secret script" not in html
    assert '<label for="id_name">Token name</label>' in html


def test_creating_a_token_shows_it_once_with_a_curl_example(client_logged_in, user):
    form = {"name": "laptop", "form_key": "f0a1b2c3"}
    response = client_logged_in.post(reverse("api-tokens"), form)

    # Shown in the POST's own answer, never stored (not even in the session).
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    assert not any("laptop" in str(v) for v in client_logged_in.session.values())
    api_token = ApiToken.objects.get(user=user)
    raw = response.context["new_token"]
    html = response.content.decode()
    assert services.api_token_authenticate(raw=raw) == api_token
    assert f'value="{raw}"' in html
    assert "Copy it now" in html
    assert "curl -X POST http://testserver/api/gemini/image/generate" in html
    assert f"Authorization: Bearer {raw}" in html

    listed = client_logged_in.get(reverse("api-tokens")).content.decode()
    assert raw not in listed
    assert api_token.prefix in listed

    # Reloading the answer posts the form again: no second token, nothing shown.
    again = client_logged_in.post(reverse("api-tokens"), form).content.decode()
    assert ApiToken.objects.filter(user=user).count() == 1
    assert raw not in again and "already created" in again


def test_a_token_needs_a_name(client_logged_in):
    response = client_logged_in.post(reverse("api-tokens"), {"name": "  "})
    assert response.status_code == 422
    assert not ApiToken.objects.exists()


def test_revoking_a_token_from_the_page(client_logged_in, user):
    api_token, raw = services.api_token_create(user=user, name="old laptop")

    response = client_logged_in.post(reverse("api-token-revoke", args=[api_token.pk]))

    assert response.status_code == 302
    assert call_api(raw).status_code == 401
    assert "Revoked" in client_logged_in.get(reverse("api-tokens")).content.decode()


def test_revoking_another_users_token_is_a_404(client_logged_in, other_user):
    api_token, raw = services.api_token_create(user=other_user, name="bobs")

    response = client_logged_in.post(reverse("api-token-revoke", args=[api_token.pk]))

    assert response.status_code == 404
    assert call_api(raw).status_code == 404  # still works


def test_revoke_needs_post_and_a_csrf_token(user):
    api_token, _ = services.api_token_create(user=user, name="ci")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    url = reverse("api-token-revoke", args=[api_token.pk])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    api_token.refresh_from_db()
    assert api_token.is_active


def test_the_tokens_page_needs_sign_in(client, db):
    response = client.get(reverse("api-tokens"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_the_nav_links_to_the_tokens_page(client_logged_in):
    html = client_logged_in.get(reverse("index")).content.decode()
    assert f'href="{reverse("api-tokens")}"' in html


# --- The admin ----------------------------------------------------------------------------


def test_the_admin_lists_tokens_without_secrets_and_cannot_add(admin_client, user):
    api_token, raw = services.api_token_create(user=user, name="ci")

    changelist = admin_client.get(
        reverse("admin:gateway_apitoken_changelist")
    ).content.decode()
    detail = admin_client.get(
        reverse("admin:gateway_apitoken_change", args=[api_token.pk])
    ).content.decode()

    assert api_token.prefix in changelist and "alice" in changelist
    for html in (changelist, detail):
        assert raw not in html and api_token.token_hash not in html
    assert admin_client.get(reverse("admin:gateway_apitoken_add")).status_code == 403


def test_the_admin_revokes_tokens(admin_client, user):
    api_token, raw = services.api_token_create(user=user, name="ci")

    admin_client.post(
        reverse("admin:gateway_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [api_token.pk]},
    )

    assert call_api(raw).status_code == 401


# --- The command ------------------------------------------------------------------------------


def test_the_command_prints_only_the_token(user):
    stdout, stderr = io.StringIO(), io.StringIO()

    call_command(
        "issue_api_token", "alice", "--name", "cron", stdout=stdout, stderr=stderr
    )

    raw = stdout.getvalue().strip()
    api_token = ApiToken.objects.get(user=user)
    assert services.api_token_authenticate(raw=raw) == api_token
    assert api_token.name == "cron"
    assert raw not in stderr.getvalue() and api_token.prefix in stderr.getvalue()


def test_the_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user"):
        call_command(
            "issue_api_token", "nobody", stdout=io.StringIO(), stderr=io.StringIO()
        )


def test_a_user_may_hold_only_so_many_active_tokens(client_logged_in, user, settings):
    settings.BANANAWEB_MAX_API_TOKENS = 2
    for name in ("one", "two"):
        services.api_token_create(user=user, name=name)
    response = client_logged_in.post(reverse("api-tokens"), {"name": "three"})
    assert response.status_code == 422
    assert "the most anyone may have" in response.content.decode()
    assert ApiToken.objects.filter(user=user).count() == 2
    services.api_token_revoke(api_token=ApiToken.objects.filter(user=user).first())
    response = client_logged_in.post(reverse("api-tokens"), {"name": "three"})
    assert response.status_code == 201
