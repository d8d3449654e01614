"""Upstream tokens: encrypted at rest, rotated, masked, audited, and kept healthy."""

import logging
from datetime import timedelta

import pytest
import requests
import responses
from cryptography.fernet import Fernet
from django.db import connection
from django.tasks import default_task_backend
from django.urls import reverse
from django.utils import timezone

from bananaweb import crypto
from bananaweb.models import ImageRequest, TokenAuditEntry, UpstreamToken
from bananaweb.tasks import (
    image_request_poll_task,
    image_request_submit_task,
    token_recheck_task,
)
from bananaweb.tokens import NoUsableToken, token_select
from tests.factories import ImageRequestFactory, UpstreamTokenFactory, UserFactory

SECRET = "sk-live-VERY-SECRET-value-7Q2x"
RESULT = "https://upstream.test/gemini/task/result"
GENERATE = "https://upstream.test/gemini/image/generate"


@pytest.fixture(autouse=True)
def fresh_keys(settings, clear_tasks):
    crypto.reset_keys()
    yield
    crypto.reset_keys()


def add_token_through_admin(admin_client, name="team", secret=SECRET, **fields):
    data = {
        "name": name,
        "secret": secret,
        "is_active": "on",
        "priority": "0",
        "notes": "",
    } | fields
    response = admin_client.post(reverse("admin:bananaweb_upstreamtoken_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return UpstreamToken.objects.get(name=name)


# --- at rest ---------------------------------------------------------------------------


def test_raw_column_never_holds_the_secret(admin_client):
    token = add_token_through_admin(admin_client)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_encrypted, last4 FROM bananaweb_upstreamtoken WHERE id = %s",
            [token.pk],
        )
        raw, last4 = cursor.fetchone()
    assert SECRET not in raw and SECRET[:-4] not in raw
    assert last4 == "7Q2x"
    assert token.secret == SECRET


def test_rotation_keeps_old_ciphertexts_readable(settings, db, capsys):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BANANAWEB_ENCRYPTION_KEYS = [old_key]
    token = UpstreamTokenFactory(secret_value=SECRET)
    before = token.secret_encrypted

    settings.BANANAWEB_ENCRYPTION_KEYS = [new_key, old_key]
    crypto.reset_keys()
    assert UpstreamToken.objects.get(pk=token.pk).secret == SECRET  # still readable

    from django.core.management import call_command

    call_command("rotate_token_encryption")
    rotated = UpstreamToken.objects.get(pk=token.pk)
    assert rotated.secret_encrypted != before
    settings.BANANAWEB_ENCRYPTION_KEYS = [new_key]  # the old key can go now
    crypto.reset_keys()
    assert UpstreamToken.objects.get(pk=token.pk).secret == SECRET
    assert TokenAuditEntry.objects.filter(event="re-encrypted").count() == 1


def test_a_lost_key_is_a_clear_error_without_the_secret(settings, db):
    settings.BANANAWEB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    token = UpstreamTokenFactory(secret_value=SECRET)
    settings.BANANAWEB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    crypto.reset_keys()
    with pytest.raises(crypto.DecryptionFailed) as exc:
        UpstreamToken.objects.get(pk=token.pk).secret  # noqa: B018 (reading it raises)
    assert SECRET not in str(exc.value)
    assert "BANANAWEB_ENCRYPTION_KEYS" in str(exc.value)


# --- the admin never shows it ------------------------------------------------------------


def test_secret_is_masked_on_every_admin_page(admin_client):
    token = add_token_through_admin(admin_client)
    ImageRequestFactory(
        user=UserFactory(),
        upstream_token=token,
        upstream_task_id="t-1",
        exchange=[
            {
                "call": "generate",
                "outcome": "Accepted",
                "message": "ok",
                "token": token.name,
            }
        ],
    )
    pages = [
        reverse("admin:bananaweb_upstreamtoken_changelist"),
        reverse("admin:bananaweb_upstreamtoken_change", args=[token.pk]),
        reverse("admin:bananaweb_upstreamtoken_history", args=[token.pk]),
        reverse("admin:bananaweb_upstreamtoken_delete", args=[token.pk]),
        reverse("admin:bananaweb_tokenauditentry_changelist"),
        reverse("admin:bananaweb_imagerequest_changelist"),
        reverse(
            "admin:bananaweb_imagerequest_change", args=[ImageRequest.objects.get().pk]
        ),
        reverse("admin:index"),
        reverse("usage-dashboard"),
        reverse("usage-export"),
    ]
    for url in pages:
        response = admin_client.get(url)
        body = (
            b"".join(response.streaming_content)
            if response.streaming
            else response.content
        )
        assert response.status_code == 200, url
        assert SECRET.encode() not in body, url
        assert SECRET[:-4].encode() not in body, url
    change_page = admin_client.get(pages[1]).content.decode()
    assert "••••7Q2x" in change_page
    assert 'name="secret"' in change_page and 'value="' + SECRET not in change_page


def test_saving_without_a_new_secret_keeps_the_old_one(admin_client):
    token = add_token_through_admin(admin_client)
    response = admin_client.post(
        reverse("admin:bananaweb_upstreamtoken_change", args=[token.pk]),
        {
            "name": "renamed",
            "secret": "",
            "is_active": "on",
            "priority": "3",
            "notes": "n",
        },
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert (token.name, token.priority, token.secret) == ("renamed", 3, SECRET)


def test_a_new_token_needs_a_secret(admin_client):
    response = admin_client.post(
        reverse("admin:bananaweb_upstreamtoken_add"),
        {"name": "x", "secret": "", "priority": "0"},
    )
    assert response.status_code == 200
    assert "Paste the token" in response.content.decode()
    assert not UpstreamToken.objects.exists()


def test_audit_log_records_who_and_which_fields_never_the_secret(
    admin_client, admin_user
):
    token = add_token_through_admin(admin_client)
    admin_client.post(
        reverse("admin:bananaweb_upstreamtoken_change", args=[token.pk]),
        {
            "name": "team",
            "secret": "sk-new-secret-value-9999",
            "is_active": "on",
            "priority": "5",
            "notes": "",
        },
    )
    created, changed = TokenAuditEntry.objects.order_by("pk")
    assert (created.event, created.actor) == ("created", admin_user)
    assert (changed.event, changed.actor, sorted(changed.fields)) == (
        "changed",
        admin_user,
        ["priority", "secret"],
    )
    for entry in TokenAuditEntry.objects.all():
        assert SECRET not in str(entry.__dict__) and "sk-new-secret" not in str(
            entry.__dict__
        )


def test_disable_and_enable_actions_are_audited(admin_client):
    token = add_token_through_admin(admin_client)
    UpstreamToken.objects.filter(pk=token.pk).update(suspended_reason="401 earlier")
    url = reverse("admin:bananaweb_upstreamtoken_changelist")
    admin_client.post(url, {"action": "disable", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.state == "disabled"
    admin_client.post(url, {"action": "enable", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert (
        token.state == "ready"
    )  # enabling by hand also clears an automatic suspension
    assert list(
        TokenAuditEntry.objects.filter(token=token)
        .values_list("event", flat=True)
        .order_by("pk")
    ) == ["created", "disabled", "enabled"]


@responses.activate
def test_check_now_tells_a_bad_token_from_a_good_one_without_spending(
    admin_client, django_capture_on_commit_callbacks
):
    good = add_token_through_admin(
        admin_client, name="good", secret="sk-good-token-0001"
    )
    bad = add_token_through_admin(admin_client, name="bad", secret="sk-bad-token-0002")

    def answer(request):
        ok = request.headers["Authorization"] == "Bearer sk-good-token-0001"
        return (
            (404, {}, '{"message": "Task not found"}')
            if ok
            else (401, {}, '{"message": "Unauthorized"}')
        )

    responses.add_callback(responses.GET, RESULT, callback=answer)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:bananaweb_upstreamtoken_changelist"),
            {"action": "check_now", "_selected_action": [good.pk, bad.pk]},
            follow=True,
        )
    assert (
        not responses.calls
    )  # the admin never waits on the upstream: the check is a task
    assert "in the background" in response.content.decode()
    page = admin_client.get(
        reverse("admin:bananaweb_upstreamtoken_change", args=[good.pk])
    ).content.decode()
    assert "waiting for the task worker" in page

    checks = [
        r for r in default_task_backend.results if r.task.name == "token_check_task"
    ]
    assert sorted(r.args[0] for r in checks) == sorted([good.pk, bad.pk])
    with django_capture_on_commit_callbacks(execute=True):
        for result in checks:
            result.task.call(*result.args)
    assert all(
        call.request.method == "GET" for call in responses.calls
    )  # never the paid endpoint
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.state == "ready"
    assert bad.state == "suspended" and "401" in bad.suspended_reason
    response = admin_client.get(
        reverse("admin:bananaweb_upstreamtoken_change", args=[good.pk])
    )
    assert "The token works." in response.content.decode()


# --- choosing and healing ----------------------------------------------------------------


def test_admin_disabled_token_is_never_chosen(user):
    UpstreamTokenFactory(is_active=False)
    with pytest.raises(NoUsableToken):
        token_select(user=user)


def test_cooling_down_token_comes_back_after_retry_after(user):
    token = UpstreamTokenFactory(cooldown_until=timezone.now() + timedelta(seconds=30))
    with pytest.raises(NoUsableToken):
        token_select(user=user)
    UpstreamToken.objects.filter(pk=token.pk).update(
        cooldown_until=timezone.now() - timedelta(seconds=1)
    )
    assert token_select(user=user) == token


@responses.activate
def test_suspended_token_is_rechecked_and_comes_back_by_itself(
    db, django_capture_on_commit_callbacks
):
    token = UpstreamTokenFactory(
        suspended_reason="The image service rejected our API token (HTTP 401)."
    )
    responses.get(RESULT, status=401, json={"message": "Unauthorized"})
    with django_capture_on_commit_callbacks(execute=True):
        token_recheck_task.call(token.pk)
    assert [
        r.args
        for r in default_task_backend.results
        if r.task.name == "token_recheck_task"
    ] == [[token.pk]]
    token.refresh_from_db()
    assert token.state == "suspended"

    responses.replace(
        responses.GET, RESULT, status=404, json={"message": "Task not found"}
    )
    default_task_backend.clear()
    with django_capture_on_commit_callbacks(execute=True):
        token_recheck_task.call(token.pk)
    token.refresh_from_db()
    assert token.state == "ready"
    assert not default_task_backend.results  # no more re-checks
    assert TokenAuditEntry.objects.filter(token=token, event="restored").exists()


@responses.activate
def test_recheck_does_not_revive_a_token_an_admin_disabled(db):
    token = UpstreamTokenFactory(is_active=False, suspended_reason="401")
    responses.get(RESULT, status=404, json={"message": "Task not found"})
    token_recheck_task.call(token.pk)
    token.refresh_from_db()
    assert token.state == "disabled"


@responses.activate
def test_out_of_credit_takes_token_out_with_the_reason(
    user, django_capture_on_commit_callbacks
):
    token = UpstreamTokenFactory(secret_value="sk-poor-token-0003")
    responses.post(GENERATE, status=402, json={"message": "Insufficient credits"})
    image_request = ImageRequestFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_submit_task.call(image_request.pk)
    token.refresh_from_db()
    image_request.refresh_from_db()
    assert (
        token.state == "suspended" and "Insufficient credits" in token.suspended_reason
    )
    assert image_request.error_code == "no_token"


def test_no_token_card_links_admins_to_add_one(client, db):
    staff = UserFactory(username="staffer", is_staff=True)
    ImageRequestFactory(
        user=staff,
        status=ImageRequest.Status.FAILED,
        error_code="no_token",
        error_message="No upstream API token…",
    )
    client.force_login(staff)
    html = client.get(reverse("index")).content.decode()
    assert reverse("admin:bananaweb_upstreamtoken_add") in html


# --- never in a log -----------------------------------------------------------------------


@responses.activate
def test_secret_never_reaches_the_logs(
    user, caplog, formatted_logs, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    UpstreamTokenFactory(name="failing", secret_value=SECRET, priority=2)
    UpstreamTokenFactory(name="ok", secret_value="sk-other-secret-5555", priority=1)
    responses.post(
        GENERATE,
        status=401,
        json={"message": f"bad token {SECRET}"},
        match=[
            responses.matchers.header_matcher({"Authorization": f"Bearer {SECRET}"})
        ],
    )
    responses.post(GENERATE, status=201, json={"taskId": "t-9"})
    responses.get(
        RESULT,
        body=requests.ConnectionError(
            "boom: Authorization: Bearer sk-other-secret-5555"
        ),
    )
    image_request = ImageRequestFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        image_request_submit_task.call(image_request.pk)
        image_request_poll_task.call(image_request.pk)
    image_request.refresh_from_db()
    assert image_request.status == ImageRequest.Status.IN_PROGRESS
    everything = caplog.text + str(image_request.exchange) + image_request.error_message
    everything += formatted_logs.getvalue()  # as written, in JSON and console lines
    everything += " ".join(UpstreamToken.objects.values_list("last_error", flat=True))
    everything += " ".join(
        UpstreamToken.objects.values_list("suspended_reason", flat=True)
    )
    assert SECRET not in everything
    assert "sk-other-secret-5555" not in everything
    assert "failing" in caplog.text  # the token is named, not shown


def test_request_admin_is_read_only(admin_client):
    image_request = ImageRequestFactory(user=UserFactory())
    change = admin_client.get(
        reverse("admin:bananaweb_imagerequest_change", args=[image_request.pk])
    ).content.decode()
    assert 'name="_save"' not in change
    assert (
        admin_client.get(
            reverse("admin:bananaweb_imagerequest_delete", args=[image_request.pk])
        ).status_code
        == 403
    )
    assert (
        admin_client.get(
            reverse("admin:bananaweb_imagerequest_changelist") + "?q=banana"
        ).status_code
        == 200
    )


# --- never on an error page ------------------------------------------------------------------


def test_secret_is_hidden_in_error_reports_of_the_client(rf, settings):
    import sys

    from django.views.debug import ExceptionReporter

    from bananaweb import mountsea

    settings.DEBUG = True  # hidden on the developer's debug page as well
    del (
        settings.MOUNTSEA_BASE_URL
    )  # fails inside client_for, with the token in its frame
    try:
        mountsea.client_for(SECRET)
    except AttributeError:
        report = ExceptionReporter(rf.get("/"), *sys.exc_info()).get_traceback_html()
    assert "client_for" in report
    assert SECRET not in report


def test_secret_is_hidden_on_the_debug_page_of_the_token_form(admin_client, settings):
    from unittest import mock

    settings.DEBUG = True
    admin_client.raise_request_exception = False
    with mock.patch.object(
        UpstreamToken, "save", side_effect=RuntimeError("database on fire")
    ):
        response = admin_client.post(
            reverse("admin:bananaweb_upstreamtoken_add"),
            {"name": "x", "secret": SECRET, "is_active": "on", "priority": "0"},
        )
    assert response.status_code == 500
    assert "database on fire" in response.content.decode()
    assert SECRET not in response.content.decode()
