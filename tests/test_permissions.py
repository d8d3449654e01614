"""Staff pages check permissions, not only is_staff: the admin's image view, the token
actions, and the usage dashboard with its CSV export."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from bananaweb import tokens
from bananaweb.gateway import services as gateway_services
from bananaweb.models import TokenAuditEntry, TokenEvent, UpstreamToken
from tests.factories import (
    ImageRequestFactory,
    UpstreamTokenFactory,
    UserFactory,
    make_image,
)

pytestmark = pytest.mark.usefixtures("clear_tasks")

DASHBOARD = "/admin/usage/"
EXPORT = "/admin/usage/export.csv"


def staff(*permissions: str, username: str = "staffer"):
    user = UserFactory(username=username, is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


# --- the admin's image view ----------------------------------------------------------


def test_staff_without_permission_cannot_open_someones_image(client, user):
    image = make_image(ImageRequestFactory(user=user))
    client.force_login(staff())

    response = client.get(reverse("admin:bananaweb_image_file", args=[image.pk]))

    assert response.status_code in (403, 404)
    assert not getattr(response, "streaming", False)


def test_staff_who_may_view_requests_open_their_images(client, user):
    image = make_image(ImageRequestFactory(user=user))
    client.force_login(staff("view_imagerequest"))

    response = client.get(reverse("admin:bananaweb_image_file", args=[image.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"


# --- the token actions ---------------------------------------------------------------


def run_action(client, action: str, token: UpstreamToken):
    return client.post(
        reverse("admin:bananaweb_upstreamtoken_changelist"),
        {"action": action, "_selected_action": [token.pk]},
    )


def test_view_only_staff_cannot_re_enable_a_disabled_token(client, admin_user):
    token = UpstreamTokenFactory()
    tokens.token_disable(token=token, actor=admin_user)
    client.force_login(staff("view_upstreamtoken"))

    run_action(client, "enable", token)

    token.refresh_from_db()
    assert token.is_active is False


def test_view_only_staff_cannot_disable_or_check_a_token(client, db, clear_tasks):
    token = UpstreamTokenFactory()
    client.force_login(staff("view_upstreamtoken"))

    run_action(client, "disable", token)
    run_action(client, "check_now", token)

    token.refresh_from_db()
    assert token.is_active is True
    assert not TokenAuditEntry.objects.filter(
        event__in=[TokenEvent.DISABLED, TokenEvent.CHECK_REQUESTED]
    ).exists()
    assert not clear_tasks.results


def test_staff_who_may_change_tokens_run_the_actions(client, admin_user):
    token = UpstreamTokenFactory()
    tokens.token_disable(token=token, actor=admin_user)
    client.force_login(staff("view_upstreamtoken", "change_upstreamtoken"))

    run_action(client, "enable", token)

    token.refresh_from_db()
    assert token.is_active is True


def test_view_only_staff_cannot_revoke_api_tokens(client, user):
    api_token, _ = gateway_services.api_token_create(user=user, name="script")
    client.force_login(staff("view_apitoken"))

    client.post(
        reverse("admin:gateway_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [api_token.pk]},
    )

    api_token.refresh_from_db()
    assert api_token.revoked_at is None


# --- the usage dashboard and its export --------------------------------------------------


@pytest.mark.parametrize("url", [DASHBOARD, EXPORT])
def test_staff_without_the_usage_permission_are_refused(client, db, url):
    client.force_login(staff("view_imagerequest", "view_upstreamtoken"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", [DASHBOARD, EXPORT])
def test_usage_viewers_see_the_dashboard_and_export(client, db, url):
    viewer = staff()
    viewer.groups.add(Group.objects.get(name="Usage viewers"))
    client.force_login(viewer)
    assert client.get(url).status_code == 200


def test_the_usage_viewers_group_holds_only_the_usage_permission(db):
    group = Group.objects.get(name="Usage viewers")
    assert [
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()
    ] == ["bananaweb.view_usage"]


@pytest.mark.parametrize("url", [DASHBOARD, EXPORT])
def test_superusers_see_the_dashboard_and_export(admin_client, url):
    assert admin_client.get(url).status_code == 200


def test_the_admin_links_the_dashboard_only_for_those_who_may_see_it(client, db):
    link = f'href="{DASHBOARD}"'
    client.force_login(staff(username="plain"))
    assert link not in client.get(reverse("admin:index")).content.decode()

    client.force_login(staff("view_usage", username="viewer"))
    assert link in client.get(reverse("admin:index")).content.decode()
